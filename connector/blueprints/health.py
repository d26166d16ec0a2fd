"""``GET /healthz``: is the process up and is its configuration loaded."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

health_bp = Blueprint("care_health", __name__)


@health_bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})
