"""Health of a process: the rules (``service``), the answers (``schemas``) and the API's
endpoints; ``notiflow worker`` serves the same answers on its own port (``notiflow.worker_http``).
"""
