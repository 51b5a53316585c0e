# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # Connection options of the Prometheus and Alertmanager modules.
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Base URL of the server, for example V(http://127.0.0.1:9090) for Prometheus or
        V(http://127.0.0.1:9093) for Alertmanager.
      - Include the path prefix if the server runs under one (C(--web.route-prefix)), for example
        V(https://monitoring.example.com/prometheus).
    type: str
    required: true
  validate_certs:
    description:
      - Whether to validate the server's TLS certificate for V(https) URLs.
      - Set to V(false) only for a server with a self-signed certificate on a trusted network.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for each HTTP response before the request counts as failed.
    type: float
    default: 10
  url_username:
    description:
      - Username for HTTP basic authentication.
      - Requires O(url_password). Mutually exclusive with O(bearer_token).
    type: str
  url_password:
    description:
      - Password for HTTP basic authentication.
      - Requires O(url_username). Mutually exclusive with O(bearer_token).
    type: str
  bearer_token:
    description:
      - "Token sent as C(Authorization: Bearer <token>), for example to a server behind an OAuth proxy."
      - Mutually exclusive with O(url_username) and O(url_password).
    type: str
"""

    # The same options without O(url), for modules that define their own URL options.
    HTTP = r"""
options:
  validate_certs:
    description:
      - Whether to validate the server's TLS certificate for V(https) URLs.
      - Set to V(false) only for a server with a self-signed certificate on a trusted network.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for each HTTP response before the request counts as failed.
    type: float
    default: 10
  url_username:
    description:
      - Username for HTTP basic authentication.
      - Requires O(url_password). Mutually exclusive with O(bearer_token).
    type: str
  url_password:
    description:
      - Password for HTTP basic authentication.
      - Requires O(url_username). Mutually exclusive with O(bearer_token).
    type: str
  bearer_token:
    description:
      - "Token sent as C(Authorization: Bearer <token>), for example to a server behind an OAuth proxy."
      - Mutually exclusive with O(url_username) and O(url_password).
    type: str
"""
