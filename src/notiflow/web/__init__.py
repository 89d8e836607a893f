"""The pages Notiflow serves besides the API: Swagger UI at ``/docs`` and ReDoc at ``/redoc``
from vendored assets (``static``), and ``/`` sending a person to the admin UI."""
