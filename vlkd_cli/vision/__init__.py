"""timm backbones and their weights, the detector, proposals and RoI features."""
