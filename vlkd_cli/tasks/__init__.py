"""What a training command optimises and what a model does with data: the finetune task, the DistillVLM and
DCD modules, the loss-term table, validation, pair scoring, inference models, gallery ranking."""
