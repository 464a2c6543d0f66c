#!/bin/sh
# A git session over generated history: one commit per directory of
# INPUT (0/, 1/, ... each holding the files that change in that commit),
# then an aggressive gc and the whole log with patches. Run in a scratch
# directory; it starts from an empty repository each time.
#
#     git-session.sh INPUT
set -eu
input=$(cd "$1" && pwd)
rm -rf repo
git init -q repo
cd repo
git config gc.auto 0
k=0
while [ -d "$input/$k" ]; do
    cp -R "$input/$k/." .
    git add -A
    git commit -q -m "change $k"
    k=$((k + 1))
done
git gc --aggressive --quiet
git log -p | wc
