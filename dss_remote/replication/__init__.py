"""One store across its replicas: the POSIX store and its mirrors.

ReplicaSet (verified reads in cost order, quorum writes) over DatasetObjects (one dataset's keys on
one replica), the repair queue, fsck, repair, and sync of keys and of the git side to the mirrors.
Imports backends, config and ria_store; never history, webhooks or the hook.
"""
