"""Retention policies as data, and purge by crypto-shredding.

Policies (``clinflow/data/retention/policies.yaml``, or ``retention_policies_file``)
say what is kept how long. A run at time ``now`` finds what is due (older than
``now - period``) and, unless it is a dry run, purges each item:

1. destroy the escrowed data key of every object concerned (``KeyEscrow.destroy``):
   from then on no copy of the object opens (replicas, backups included);
2. append a ``retention.purged`` entry to the audit chain: the object or row, its
   digest, the key ids destroyed, the policy (idempotent on a deterministic id);
3. delete the object (and, for a table policy, the row).

Every step is idempotent, so a run interrupted anywhere and retried ends in the
same state with one audit entry per purged item. Objects written before key
escrow (envelope v1) carry their own wrapped key: they are deleted and recorded
with ``crypto_shredded: false``.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import asyncpg
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clinflow.audit_chain import AuditChain, AuditEntry
from clinflow.errors import FatalSchemaMismatch
from clinflow.key_escrow import KeyEscrow
from clinflow.object_store import ObjectNotFound, ObjectStore
from clinflow.settings import Settings

DEFAULT_POLICIES = Path(__file__).parent / "data" / "retention" / "policies.yaml"
_PERIOD = re.compile(r"^\s*(\d+)\s*([dwmy])\s*$")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


class RetentionPolicyError(FatalSchemaMismatch):
    """The policy file is malformed or a policy targets something it must not."""


class PolicyTarget(BaseModel):
    """What a policy applies to: objects under a bucket prefix, or rows of a table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["bucket", "table"]
    bucket: str | None = Field(None, description="Role (documents, batches...) or a bucket name.")
    prefix: str = ""
    table: str | None = None
    id_column: str | None = None
    time_column: str | None = None
    object_ref_column: str | None = Field(None, description="Column holding s3://bucket/key.")
    object_bucket_column: str | None = None
    object_key_column: str | None = None

    @model_validator(mode="after")
    def _check(self) -> PolicyTarget:
        if self.kind == "bucket" and not self.bucket:
            raise ValueError("a bucket policy names its bucket")
        if self.kind == "table":
            if not (self.table and self.id_column and self.time_column):
                raise ValueError("a table policy names table, id_column and time_column")
            for col in (
                self.table,
                self.id_column,
                self.time_column,
                self.object_ref_column,
                self.object_bucket_column,
                self.object_key_column,
            ):
                if col is not None and not _IDENT.match(col):
                    raise ValueError(f"{col!r} is not a plain SQL identifier")
            if bool(self.object_bucket_column) != bool(self.object_key_column):
                raise ValueError("object_bucket_column and object_key_column go together")
        return self


class RetentionPolicy(BaseModel):
    """One row of the policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    applies_to: PolicyTarget
    period: str
    action: Literal["purge"] = "purge"

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        if not _PERIOD.match(value):
            raise ValueError(f"period {value!r} must look like 90d, 12w, 18m or 6y")
        return value.strip()

    def cutoff(self, now: datetime) -> datetime:
        """Items last changed before this instant are due at ``now``."""
        match = _PERIOD.match(self.period)
        assert match is not None
        n, unit = int(match.group(1)), match.group(2)
        now = now.astimezone(UTC)
        if unit == "d":
            return now - timedelta(days=n)
        if unit == "w":
            return now - timedelta(weeks=n)
        months = n * (12 if unit == "y" else 1)
        total = now.year * 12 + (now.month - 1) - months
        year, month = divmod(total, 12)
        month += 1
        day = min(now.day, calendar.monthrange(year, month)[1])
        return now.replace(year=year, month=month, day=day)


def load_policies(path: Path | None = None) -> list[RetentionPolicy]:
    """The policies of ``path`` (the packaged file by default).

    Raises RetentionPolicyError for a malformed file or duplicate names.
    """
    source = path or DEFAULT_POLICIES
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
        policies = [RetentionPolicy.model_validate(p) for p in raw["policies"]]
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise RetentionPolicyError(
            "retention_policies_invalid", f"retention policies {source}: {exc}"
        ) from exc
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise RetentionPolicyError("retention_policies_invalid", f"duplicate names in {names}")
    return policies


class DueItem(BaseModel):
    """One thing a policy says must go: an object, or a table row (maybe with its object)."""

    policy: str
    kind: Literal["object", "row"]
    ref: str = Field(description="s3://bucket/key or table:<table>/<id>")
    aged_from: datetime
    bucket: str | None = None
    key: str | None = None
    table: str | None = None
    row_id: str | None = None


class RetentionPlan(BaseModel):
    now: datetime
    items: list[DueItem]
    truncated: bool = Field(description="More was due than the per-run limit.")

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.items:
            out[item.policy] = out.get(item.policy, 0) + 1
        return out


class PurgeRecord(BaseModel):
    """What one purge did, as recorded on the audit chain."""

    policy: str
    ref: str
    payload_sha256: str | None
    destroyed_key_ids: list[str]
    crypto_shredded: bool
    audit_seq: int


class RetentionRunResult(BaseModel):
    now: datetime
    dry_run: bool
    due: int
    purged: list[PurgeRecord]
    per_policy: dict[str, int]
    truncated: bool


def _bucket_name(settings: Settings, name: str) -> str:
    roles = {
        "documents": settings.s3_bucket_documents,
        "batches": settings.s3_bucket_batches,
        "quarantine": settings.s3_bucket_quarantine,
        "dlq": settings.s3_bucket_dlq,
        "audit": settings.s3_bucket_audit,
    }
    return roles.get(name, name)


def _split_ref(ref: str) -> tuple[str, str] | None:
    if not ref.startswith("s3://"):
        return None
    bucket, _, key = ref[5:].partition("/")
    return (bucket, key) if bucket and key else None


class Retention:
    """Plan and apply retention policies. Every method is idempotent."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        store: ObjectStore,
        escrow: KeyEscrow,
        audit: AuditChain,
        policies: list[RetentionPolicy] | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.store = store
        self.escrow = escrow
        self.audit = audit
        self.policies = (
            policies if policies is not None else load_policies(settings.retention_policies_file)
        )
        self._check_not_archive()

    def _check_not_archive(self) -> None:
        archive = self.settings.archive_bucket or self.settings.s3_bucket_audit
        for p in self.policies:
            t = p.applies_to
            if t.kind != "bucket" or t.bucket is None:
                continue
            if _bucket_name(self.settings, t.bucket) == archive and (
                self.settings.archive_prefix.startswith(t.prefix)
                or t.prefix.startswith(self.settings.archive_prefix)
            ):
                raise RetentionPolicyError(
                    "retention_targets_archive",
                    f"policy {p.name!r} would purge the sealed audit archive",
                )

    # -- planning ------------------------------------------------------------

    async def plan(self, now: datetime, *, limit: int | None = None) -> RetentionPlan:
        """Everything due at ``now`` (at most ``limit`` items, oldest first per policy)."""
        limit = limit or self.settings.retention_max_purge_per_run
        items: list[DueItem] = []
        truncated = False
        for policy in self.policies:
            room = limit - len(items)
            if room <= 0:
                truncated = True
                break
            found = await self._due(policy, now, room + 1)
            if len(found) > room:
                truncated = True
                found = found[:room]
            items.extend(found)
        return RetentionPlan(now=now, items=items, truncated=truncated)

    async def _due(self, policy: RetentionPolicy, now: datetime, limit: int) -> list[DueItem]:
        cutoff = policy.cutoff(now)
        t = policy.applies_to
        if t.kind == "bucket":
            assert t.bucket is not None
            bucket = _bucket_name(self.settings, t.bucket)
            out: list[DueItem] = []
            paginator = self.store.client.get_paginator("list_objects_v2")
            try:
                async for page in paginator.paginate(Bucket=bucket, Prefix=t.prefix):
                    for obj in page.get("Contents", []):
                        modified = obj["LastModified"].astimezone(UTC)
                        if modified < cutoff:
                            out.append(
                                DueItem(
                                    policy=policy.name,
                                    kind="object",
                                    ref=f"s3://{bucket}/{obj['Key']}",
                                    aged_from=modified,
                                    bucket=bucket,
                                    key=obj["Key"],
                                )
                            )
            except Exception as exc:  # a missing bucket holds nothing due
                if "NoSuchBucket" not in str(exc):
                    raise
            out.sort(key=lambda i: i.aged_from)
            return out[:limit]
        sql = (
            f'SELECT "{t.id_column}"::text AS id, "{t.time_column}" AS t FROM "{t.table}" '
            f'WHERE "{t.time_column}" < $1 ORDER BY "{t.time_column}" LIMIT $2'
        )
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(sql, cutoff, limit)
        return [
            DueItem(
                policy=policy.name,
                kind="row",
                ref=f"table:{t.table}/{r['id']}",
                aged_from=r["t"],
                table=t.table,
                row_id=r["id"],
            )
            for r in rows
        ]

    # -- purging ---------------------------------------------------------------

    async def run(
        self,
        now: datetime,
        *,
        dry_run: bool = False,
        limit: int | None = None,
        actor: str = "retention",
    ) -> RetentionRunResult:
        """Plan at ``now`` and (unless ``dry_run``) purge every due item."""
        plan = await self.plan(now, limit=limit)
        purged: list[PurgeRecord] = []
        if not dry_run:
            by_name = {p.name: p for p in self.policies}
            for item in plan.items:
                record = await self.purge_item(by_name[item.policy], item, actor=actor)
                if record is not None:
                    purged.append(record)
        return RetentionRunResult(
            now=now,
            dry_run=dry_run,
            due=len(plan.items),
            purged=purged,
            per_policy=plan.counts(),
            truncated=plan.truncated,
        )

    async def purge_item(
        self, policy: RetentionPolicy, item: DueItem, *, actor: str
    ) -> PurgeRecord | None:
        """Purge one due item; None when it is already gone."""
        if item.kind == "object":
            assert item.bucket is not None and item.key is not None
            return await self.purge_object(policy.name, item.bucket, item.key, actor=actor)
        return await self._purge_row(policy, item, actor=actor)

    async def purge_object(
        self,
        policy: str,
        bucket: str,
        key: str,
        *,
        actor: str,
        extra: dict[str, Any] | None = None,
    ) -> PurgeRecord | None:
        """Crypto-shred, record and delete ``bucket/key``; None when it no longer exists."""
        try:
            head = await self.store.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if "404" in str(exc) or "Not Found" in str(exc) or "NoSuchKey" in str(exc):
                return None
            raise
        meta: dict[str, str] = head.get("Metadata", {})
        etag = str(head.get("ETag", "")).strip('"')
        escrow_ids = set(await self.escrow.keys_for_object(bucket, key))
        if meta.get("clinflow-escrow-key-id"):
            escrow_ids.add(meta["clinflow-escrow-key-id"])
        destroyed = []
        for escrow_id in sorted(escrow_ids):
            record = await self.escrow.destroy(
                escrow_id, actor=actor, reason=f"retention policy {policy}"
            )
            destroyed.append(record)
        shredded = bool(meta.get("clinflow-escrow-key-id"))
        ref = f"s3://{bucket}/{key}"
        entry = await self.audit.append(
            AuditEntry(
                entry_id=f"retention-purge:{ref}:{etag}",
                actor=actor,
                action="retention.purged",
                reason=f"retention policy {policy}: period elapsed",
                subject_ref=ref,
                payload_sha256=meta.get("clinflow-sha256"),
                details={
                    "policy": policy,
                    "kind": "object",
                    "etag": etag,
                    "stored_size": head.get("ContentLength"),
                    "destroyed_key_ids": [d.key_id for d in destroyed],
                    "kek_ids": sorted({d.kek_id for d in destroyed}),
                    "crypto_shredded": shredded,
                    **(extra or {}),
                },
            )
        )
        try:
            await self.store.delete(bucket, key)
        except ObjectNotFound:
            pass
        return PurgeRecord(
            policy=policy,
            ref=ref,
            payload_sha256=meta.get("clinflow-sha256"),
            destroyed_key_ids=[d.key_id for d in destroyed],
            crypto_shredded=shredded,
            audit_seq=entry.seq,
        )

    async def _purge_row(
        self, policy: RetentionPolicy, item: DueItem, *, actor: str
    ) -> PurgeRecord | None:
        t = policy.applies_to
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f'SELECT row_to_json(x)::text AS body FROM "{t.table}" x '
                f'WHERE "{t.id_column}"::text = $1',
                item.row_id,
            )
        if row is None:
            return None
        body: dict[str, Any] = json.loads(row["body"])
        digest = hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        objects: list[tuple[str, str]] = []
        if t.object_ref_column and body.get(t.object_ref_column):
            parsed = _split_ref(str(body[t.object_ref_column]))
            if parsed:
                objects.append(parsed)
        if t.object_bucket_column and t.object_key_column:
            b, k = body.get(t.object_bucket_column), body.get(t.object_key_column)
            if b and k:
                objects.append((str(b), str(k)))
        destroyed: list[str] = []
        shredded = True
        for bucket, key in objects:
            rec = await self.purge_object(
                policy.name, bucket, key, actor=actor, extra={"row": item.ref}
            )
            if rec is not None:
                destroyed += rec.destroyed_key_ids
                shredded = shredded and rec.crypto_shredded
        entry = await self.audit.append(
            AuditEntry(
                entry_id=f"retention-purge:{item.ref}:{digest[:16]}",
                actor=actor,
                action="retention.purged",
                reason=f"retention policy {policy.name}: period elapsed",
                subject_ref=item.ref,
                payload_sha256=digest,
                details={
                    "policy": policy.name,
                    "kind": "row",
                    "aged_from": item.aged_from.isoformat(),
                    "objects": [f"s3://{b}/{k}" for b, k in objects],
                    "destroyed_key_ids": destroyed,
                },
            )
        )
        async with self.pool.acquire() as conn:
            await conn.execute(
                f'DELETE FROM "{t.table}" WHERE "{t.id_column}"::text = $1', item.row_id
            )
        return PurgeRecord(
            policy=policy.name,
            ref=item.ref,
            payload_sha256=digest,
            destroyed_key_ids=destroyed,
            crypto_shredded=bool(objects) and shredded,
            audit_seq=entry.seq,
        )
