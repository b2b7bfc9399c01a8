"""safetensors artifacts: schemas, lineage, atomic and sharded writes, model and eval directories, regions."""
