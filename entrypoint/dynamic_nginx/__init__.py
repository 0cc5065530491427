"""dynamic-nginx: keep nginx upstream blocks in step with the containers Docker runs.

Pipeline: docker_source (I/O) -> model (pure) -> render (pure) -> write (I/O);
the reloader (watchdog -> nginx -t -> reload) runs as a separate program.
"""
