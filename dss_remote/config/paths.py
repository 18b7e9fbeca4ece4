"""Every path dss keeps in a store (under `dss/`, which DataLad never reads) and in a clone.

Relative to the store's root (and so to a mirror's root) unless named otherwise. Which of them a
mirror carries: the config, bundles and events (`dss sync` copies them); the repair queue is
written to the replicas directly; subscriptions (secrets), the outbox, locks, logs, access
control, audit and checksum records (derived from the keys, recomputed by `dss checksums`) never
leave the store.
"""

from __future__ import annotations

#: the store's settings: mirrors, write quorum, delivery policy (config/store_config.py)
CONFIG = "dss/config.json"
#: immutable bundle manifests, `<dataset id>/<version>.json`, and each dataset's `log.jsonl`
BUNDLES = "dss/bundles"
#: the event journal: `<UTC day>/<event id>.json`, one immutable file per event
EVENTS = "dss/events"
#: store-side metadata records (`dss meta set`), per dataset; mirrored like the manifests
META = "dss/meta"
#: the search index (a cache rebuilt from manifests and the journal; never mirrored)
SEARCH_INDEX = "dss/index"
#: webhook subscriptions, `<uuid>.json`, mode 0600, or 0640 in a group-shared store (they hold
#: the signing secret)
SUBSCRIPTIONS = "dss/subscriptions"
#: deliveries still to make, `<subscription id>/<event id>.json`; `.lock` is the deliverer's lock
OUTBOX = "dss/outbox"
#: deliveries given up on, same layout as the outbox plus `reason` and `dead_at`
OUTBOX_DEAD = "dss/outbox-dead"
#: outbox files that could not be read, each with a `.reason` file beside it
OUTBOX_QUARANTINE = "dss/outbox-quarantine"
#: keys a replica missed: `<replica>/<dataset id>/<escaped key>`, on the replicas that took the write
REPAIR_QUEUE = "dss/repair-queue"
#: the log of the detached `dss deliver` runs
DELIVER_LOG = "dss/logs/deliver.log"
#: the log of the detached `dss sync --git-only` runs the hook starts after a push
GIT_SYNC_LOG = "dss/logs/git-sync.log"
#: held while `dss sync --git-only` uploads, so one push's upload never interleaves with the next
GIT_SYNC_LOCK = "dss/locks/git-sync.lock"
#: `dss pack`'s lock per dataset, `<dataset id>.lock`: one pack of a dataset at a time
PACK_LOCKS = "dss/locks/pack"
#: `dss pack`'s staging trees, `<dataset id>/<member path>` (hard links to loose objects); never
#: mirrored, removed by the next pack of the dataset when a killed one left one
PACK_STAGING = "dss/tmp/pack"
#: `dss gc`'s reports, `<UTC time>.json`: what each run collected, per dataset; never mirrored
GC_REPORTS = "dss/gc"
#: held while `dss dedup` links (one per store; a dry run takes none)
DEDUP_LOCK = "dss/locks/dedup.lock"
#: held while `dss serve` counts a user's subscriptions and adds one (the per-user limit)
SUBSCRIPTIONS_LOCK = "dss/locks/subscriptions.lock"

#: files deposited over the write API and not yet in a bundle (`PUT /v1/files`): `objects/<hash
#: dir>/<key>` (content, 0444, by SHA256E key; uploaded to every writable mirror under the same
#: path before the deposit is answered), `records/<file uuid>/<version>.json` (what each file
#: version is; never mirrored) and `pending/` (background copies)
FILE_POOL = "dss/files"
#: direct uploads in progress (the tus protocol): `<upload id>.part` and `<upload id>.json`;
#: never mirrored, removed when finished into the file pool or older than the leftover age
UPLOADS = "dss/tmp/uploads"
#: scratch repositories of the write API (a bundle's commit is built there, then moved into
#: the dataset's bare repo); never mirrored
WRITE_TMP = "dss/tmp/write"
#: a dataset's write lock for the write API, `<dataset id>.lock`
WRITE_LOCKS = "dss/locks/write"
#: collections (`/v1/collections`): `<uuid>/<version>.json`, each with its owner; never mirrored
COLLECTIONS = "dss/collections"
#: checkout jobs (`POST /v1/bundles/{uuid}/checkout`, `dss checkout`): `<job id>.json`; never mirrored
CHECKOUT_JOBS = "dss/checkout"

#: access control of `dss serve`: `tokens/<token id>.json` (only a hash of each secret, mode 0600),
#: `issuers.json` (trusted JWT issuers), `acl.json` (who may read and write which dataset); never
#: mirrored, never served
ACCESS = "dss/access"
#: one JSON line per denied request and per write, in daily files `<UTC day>.jsonl`; never mirrored
AUDIT = "dss/audit"
#: the four HCA DSS checksums of each stored key, `<dataset id>/<key hash dir>/<key>.json`, the
#: hash dir being the key's lower dirhash (`abc/def/`); immutable, never mirrored
CHECKSUMS = "dss/checksums"

#: in a clone, under its git dir: copies of the configs of the stores it reached, so a node that
#: cannot see the store still finds the mirrors
CLONE_CONFIG_CACHE = "dss/store-config"
