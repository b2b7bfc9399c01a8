"""`vlkd demo`: the plan of commands it runs and the summary tables it prints."""
