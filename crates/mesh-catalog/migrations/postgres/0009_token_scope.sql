-- A token's own scope: the roles it was issued with, as JSON `[["role", "domain"], ...]`. A
-- request made with it holds those of its principal's roles only (NULL, for tokens issued before
-- scopes: every role of the principal).
ALTER TABLE tokens ADD COLUMN scope TEXT;
