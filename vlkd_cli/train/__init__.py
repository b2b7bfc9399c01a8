"""The one training loop: its config, optimizer and schedule, checkpoints and exact resume, sampler, RNG."""
