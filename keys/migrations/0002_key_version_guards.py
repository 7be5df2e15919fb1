"""Database-level guards for invariant 10 (PostgreSQL): whatever the caller, a key version that a
secret refers to can never be destroyed, a destroyed version never comes back, version rows are
never deleted, and no secret can be written under a missing or destroyed version."""

from django.db import migrations

from jitaccess.pg_migration import postgres_only

FORWARD = """
CREATE OR REPLACE FUNCTION keys_keyversion_guard() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'key versions are never deleted; destroy wipes their material' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF OLD.state = 'destroyed' AND NEW.state <> 'destroyed' THEN
    RAISE EXCEPTION 'a destroyed key version cannot come back' USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.state = 'destroyed' AND EXISTS (
      SELECT 1 FROM keys_secret s WHERE s.keyring_id = NEW.keyring_id AND s.key_version = NEW.version) THEN
    RAISE EXCEPTION USING ERRCODE = 'check_violation',
      MESSAGE = 'key version ' || NEW.version || ' is still referenced by a secret';
  END IF;
  RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER keys_keyversion_guard
  BEFORE UPDATE OR DELETE ON keys_keyversion
  FOR EACH ROW EXECUTE FUNCTION keys_keyversion_guard();

CREATE OR REPLACE FUNCTION keys_secret_version_guard() RETURNS trigger AS $$
BEGIN
  IF NOT EXISTS (
      SELECT 1 FROM keys_keyversion v
      WHERE v.keyring_id = NEW.keyring_id AND v.version = NEW.key_version AND v.state <> 'destroyed'
      FOR SHARE) THEN
    RAISE EXCEPTION USING ERRCODE = 'check_violation',
      MESSAGE = 'secret sealed under missing or destroyed key version ' || NEW.key_version;
  END IF;
  RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER keys_secret_version_guard
  BEFORE INSERT OR UPDATE OF key_version, keyring_id ON keys_secret
  FOR EACH ROW EXECUTE FUNCTION keys_secret_version_guard();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS keys_secret_version_guard ON keys_secret;
DROP FUNCTION IF EXISTS keys_secret_version_guard();
DROP TRIGGER IF EXISTS keys_keyversion_guard ON keys_keyversion;
DROP FUNCTION IF EXISTS keys_keyversion_guard();
"""


class Migration(migrations.Migration):
    dependencies = [("keys", "0001_initial")]
    operations = [postgres_only(FORWARD, BACKWARD)]
