"""Invariant 10 as a property: any sequence of create / update / rotate / rewrap / archive leaves
every secret readable with its latest value, on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approvals.models import SecurityGroup, StandingMembership
from keys import services
from keys.kek import kek_cache_clear
from keys.models import KeyRing, KeyState, KeyVersion, Secret
from keys.reveal import secret_reveal
from tests.conftest import make_user

pytestmark = [pytest.mark.postgres]

operation = st.one_of(
    st.tuples(st.just("create"), st.text(min_size=1, max_size=40).filter(str.strip)),
    st.tuples(
        st.just("update"), st.integers(min_value=0, max_value=50), st.text(min_size=1, max_size=40).filter(str.strip)
    ),
    st.tuples(st.just("rotate")),
    st.tuples(st.just("rewrap"), st.integers(min_value=1, max_value=4)),
    st.tuples(st.just("archive")),
    st.tuples(st.just("forget_cached_keys")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=25))
def test_every_secret_stays_readable_with_its_latest_value(db: Any, operations: list[tuple[Any, ...]]) -> None:
    Secret.objects.all().delete()
    # Key versions are never deleted (a database trigger refuses), so each example gets its own ring.
    group, _ = SecurityGroup.objects.get_or_create(name="prop-group")
    service = make_user(f"svc-{KeyRing.objects.count()}", is_service_account=True)
    StandingMembership.objects.create(security_group=group, user=service)
    keyring = services.keyring_create(name=f"prop-{KeyRing.objects.count()}", security_group=group, acting_user=None)
    expected: dict[int, str] = {}

    for op in operations:
        if op[0] == "create":
            secret = services.secret_create(
                keyring=keyring, name=f"s{len(expected)}", kind="generic", metadata={}, value=op[1], acting_user=service
            )
            expected[secret.pk] = op[1]
        elif op[0] == "update" and expected:
            secret_id = sorted(expected)[op[1] % len(expected)]
            services.secret_update(Secret.objects.get(pk=secret_id), acting_user=service, value=op[2])
            expected[secret_id] = op[2]
        elif op[0] == "rotate":
            services.keyring_rotate(keyring, acting_user=None)
        elif op[0] == "rewrap":
            services.keyring_rewrap(keyring, batch_size=op[1])
        elif op[0] == "archive":
            services.keyversions_archive_unreferenced(keyring)
        elif op[0] == "forget_cached_keys":
            kek_cache_clear()

        for secret_id, value in expected.items():
            assert secret_reveal(secret_id, acting_user=service, reason="property").value == value
        assert KeyVersion.objects.filter(keyring=keyring, state=KeyState.PRIMARY).count() == 1
        in_use = set(Secret.objects.filter(keyring=keyring).values_list("key_version", flat=True))
        archived = set(
            KeyVersion.objects.filter(keyring=keyring, state=KeyState.ARCHIVED).values_list("version", flat=True)
        )
        assert not in_use & archived  # archiving never takes a version that a secret still uses
