"""gunicorn settings for the connector's web processes:

    gunicorn -c deploy/gunicorn.conf.py connector.wsgi:app

Command-line options (``--bind 0.0.0.0:8000``) and ``GUNICORN_CMD_ARGS`` win over these;
``WEB_CONCURRENCY`` sets the number of worker processes. gunicorn's own logs take the
connector's format ([logging], ``CARE_LOG_FORMAT``).
"""

from __future__ import annotations

from connector.logging_setup import gunicorn_logconfig

bind = "127.0.0.1:8000"
# Requests are short (webhooks answer without calling the desk): threaded workers.
worker_class = "gthread"
threads = 4
timeout = 30
graceful_timeout = 30

accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'
logconfig_dict = gunicorn_logconfig()
