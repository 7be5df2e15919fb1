from __future__ import annotations

import django_filters

from keys.models import Secret, SecretKind


class SecretFilter(django_filters.FilterSet):
    keyring = django_filters.CharFilter(field_name="keyring__name")
    kind = django_filters.ChoiceFilter(choices=SecretKind.choices)
    name = django_filters.CharFilter(field_name="name")

    class Meta:
        model = Secret
        fields = ["keyring", "kind", "name"]
