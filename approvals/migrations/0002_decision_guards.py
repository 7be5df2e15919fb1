"""Database-level guards on decisions (PostgreSQL), so that no path — API, admin, shell or raw
SQL by the application role — can record a self-approval or rewrite a decision."""

from django.db import migrations

from jitaccess.pg_migration import postgres_only

FORWARD = """
CREATE OR REPLACE FUNCTION approvals_decision_guard() RETURNS trigger AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    RAISE EXCEPTION 'decisions are append-only' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF EXISTS (SELECT 1 FROM approvals_accessrequest r
             WHERE r.id = NEW.request_id AND r.requester_id = NEW.approver_id) THEN
    RAISE EXCEPTION 'an approver cannot decide their own request' USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER approvals_decision_guard
  BEFORE INSERT OR UPDATE OR DELETE ON approvals_decision
  FOR EACH ROW EXECUTE FUNCTION approvals_decision_guard();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS approvals_decision_guard ON approvals_decision;
DROP FUNCTION IF EXISTS approvals_decision_guard();
"""


class Migration(migrations.Migration):
    dependencies = [("approvals", "0001_initial")]
    operations = [postgres_only(FORWARD, BACKWARD)]
