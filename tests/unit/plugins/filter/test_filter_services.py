from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.runbook.remediation.plugins.filter.services import compose_project


@pytest.mark.parametrize(("service", "project"), [
    ({"project": "shop", "project_src": "/srv/Other"}, "shop"),  # named: taken as it is
    ({"project_src": "/srv/shop"}, "shop"),
    ({"project_src": "/srv/shop/"}, "shop"),  # a trailing slash is no empty name
    # As Compose derives it: lowercase, only a-z0-9_- kept, no leading _ or -.
    ({"project_src": "/srv/Runbook.Office-TAG"}, "runbookoffice-tag"),
    ({"project_src": "/srv/_-My App_1"}, "myapp_1"),
    ({"project_src": ""}, ""),
    ({}, ""),
])
def test_compose_project_is_the_name_compose_gives_the_project(service, project):
    assert compose_project(service) == project


def test_compose_project_needs_a_service_description():
    with pytest.raises(AnsibleFilterError, match="expects a service description"):
        compose_project("/srv/shop")
