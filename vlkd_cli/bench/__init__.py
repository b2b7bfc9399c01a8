"""The latency harness of `vlkd benchmark-latency`: timing, models with their backbones, pipeline, galleries."""
