from tests.conftest import approve_through


def test_it_issues_a_grant_after_both_stages(cast, pending):
    request = approve_through(pending, cast["legal1a"], cast["legal2"])
    assert request.state == "approved"
    assert request.grant.user == cast["requester"]
