-- name: RememberSignature :execrows
-- One statement per signed request: 1 row when the signature is new, 0 when an
-- instance (any instance: the table is shared) has seen it before. The insert commits
-- on its own, so two copies racing on two instances cannot both get 1.
INSERT INTO signature_replays (digest, expires_at) VALUES (@digest, @expires_at)
ON CONFLICT DO NOTHING;

-- name: DeleteExpiredSignatures :execrows
DELETE FROM signature_replays WHERE expires_at < @before;
