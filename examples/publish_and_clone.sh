#!/bin/sh
# A store on shared storage, one dataset published to it, and a clone on another node.
# Run from an environment where dss-remote is installed (it brings git-annex and DataLad).
set -eu
STORE=${STORE:-/tmp/dss-example/store}
WORK=${WORK:-/tmp/dss-example}

dss init "$STORE"                                        # admin, once per store

datalad create "$WORK/study"                             # a scientist's dataset
echo "subject,score" > "$WORK/study/scores.csv"
datalad save -d "$WORK/study" -m "first scores"
dss create-sibling -d "$WORK/study" --name store "ria+file://$STORE" --alias study
datalad push -d "$WORK/study" --to store                 # history + content in one command

# anywhere the store is mounted (a cluster node, a colleague's workstation):
datalad clone "ria+file://$STORE#~study" "$WORK/study-copy"
cd "$WORK/study-copy" && datalad get . && git annex fsck --from store-storage --fast
