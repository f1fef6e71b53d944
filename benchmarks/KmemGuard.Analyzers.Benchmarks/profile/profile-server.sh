#!/bin/bash
# CPU profile of a warm compiler server compiling the corpus: the share of its CPU samples spent in
# KmemGuard's frames, which does not depend on the machine's load (samples are taken only while the
# server runs). Needs perf and a corpus written by `csc` mode (its response files).
#
#   profile-server.sh RSP [WARMUPS] [ROUNDS]
#   e.g. profile-server.sh /tmp/kmemguard-corpus-200/sdk-kmemguard.rsp
#
# Prints the share table of share.py; the raw samples stay in $TMPDIR/kmemguard-profile.txt.
set -euo pipefail
rsp=$1; warmups=${2:-10}; rounds=${3:-4}
roslyn=$(dirname "$(readlink -f "$(which dotnet)")")/sdk/$(dotnet --version)/Roslyn/bincore
pipe=kmemguard-profile-$$
tmp=${TMPDIR:-/tmp}
DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 dotnet "$roslyn/VBCSCompiler.dll" -pipename:$pipe >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
# A client that finds no server starts its own: wait until ours listens (its pipe is a socket in the temp directory).
for ((waited = 0; waited < 600; waited++)); do [ -S "$tmp/$pipe" ] && break; sleep 0.1; done
[ -S "$tmp/$pipe" ] || { echo "the compiler server did not start listening on $tmp/$pipe" >&2; exit 1; }
for ((i = 0; i < warmups; i++)); do dotnet "$roslyn/csc.dll" /shared:$pipe @"$rsp" >/dev/null; done
perf record -F 999 -g -p $server -o "$tmp/kmemguard-profile.data" 2>/dev/null &
recorder=$!
sleep 0.5
for ((i = 0; i < rounds; i++)); do dotnet "$roslyn/csc.dll" /shared:$pipe @"$rsp" >/dev/null; done
kill -INT $recorder; wait $recorder || true
perf script -i "$tmp/kmemguard-profile.data" 2>/dev/null > "$tmp/kmemguard-profile.txt"
python3 "$(dirname "$0")/share.py" "$tmp/kmemguard-profile.txt"
