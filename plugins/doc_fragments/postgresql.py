# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment(object):

    # How the PostgreSQL modules log in (module_utils _postgresql.login_argument_spec); the
    # login user stays in each module, which says what that role needs there.
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host running the database. Empty to use the Unix socket (O(login_unix_socket) or libpq's default).
    type: str
    default: ''
    aliases: [host]
  login_unix_socket:
    description:
      - Directory of the Unix domain socket for local connections.
    type: str
    default: ''
    aliases: [unix_socket]
  login_port:
    description:
      - Database port to connect to.
    type: int
    default: 5432
    aliases: [port]
  login_password:
    description:
      - The password of O(login_user). Never returned nor logged.
    type: str
    default: ''
  ssl_mode:
    description:
      - Whether or with what priority an SSL connection is negotiated (libpq's C(sslmode)).
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - A file of CA certificates the server's certificate must be signed by.
    type: str
    aliases: [ssl_rootcert]
  connect_timeout:
    description:
      - Seconds to wait for the connection.
    type: int
    default: 10
requirements:
  - psycopg2 >= 2.8 on the host the module runs on
"""
