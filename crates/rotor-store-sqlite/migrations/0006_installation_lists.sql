-- Installations listed newest first by organization or by app (the admin
-- lists page through them by (created_at, id)).
CREATE INDEX installations_org_created ON installations (org_slug, created_at) WHERE deleted_at IS NULL;
CREATE INDEX installations_app_created ON installations (app_id, created_at) WHERE deleted_at IS NULL;
