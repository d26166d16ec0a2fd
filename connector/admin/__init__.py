"""The admin console: a service layer (:mod:`connector.admin.service`), a JSON API under
``/admin/api/`` (:mod:`connector.admin.api`) and server-rendered pages under ``/admin/``."""
