"""`vlkd export`: the export source, the Hugging Face directory, traced graphs and the generated README."""
