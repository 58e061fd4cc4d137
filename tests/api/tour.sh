#!/bin/sh
# The README's tour of the HTTP API: one curl per step, nothing else but jq.
# tests/api/test_tour.py runs this very file against a real server, so the README's commands
# are known to work. Start a server first (`make run`), then:  sh tests/api/tour.sh
#
#   REWIND  the server's URL                     (default http://127.0.0.1:8080)
#   DATA    its data directory                   (default ./data, as `make run` uses)
#   REPO    a git repository: path, file:// or https:// URL (default: the current directory)
#   AGENT   the agent to run                     (default claude-code)
#   PROMPT  what to ask it                       (default: a haiku, written to haiku.txt)
#   RESULT  the file to fetch from its workspace (default haiku.txt)
set -eu
REWIND=${REWIND:-http://127.0.0.1:8080}
DATA=${DATA:-./data}
REPO=${REPO:-$(pwd)}
AGENT=${AGENT:-claude-code}
PROMPT=${PROMPT:-Write a haiku about event logs into haiku.txt}
RESULT=${RESULT:-haiku.txt}
JSON="Content-Type: application/json"

# 1. The admin token: printed at the first start, kept in DATA/admin-token.
ADMIN="Authorization: Bearer $(cat "$DATA/admin-token")"

# 2. The admin registers a repository; the server clones it in the background.
curl -fsS "$REWIND/repositories" -H "$ADMIN" -H "$JSON" \
  -d "$(jq -n --arg url "$REPO" '{name: "tour", gitUrl: $url}')" | jq -c '{name, cloneStatus}'
until curl -fsS "$REWIND/repositories/tour" -H "$ADMIN" | jq -e '.cloneStatus == "ready"' >/dev/null
do sleep 0.2; done

# 3. The admin adds a user, who logs in for a token of their own.
curl -fsS "$REWIND/users" -H "$ADMIN" -H "$JSON" \
  -d '{"username": "ada", "password": "correct horse battery"}' | jq -c .
TOKEN=$(curl -fsS "$REWIND/auth/login" -H "$JSON" \
  -d '{"username": "ada", "password": "correct horse battery"}' | jq -r .token)
AUTH="Authorization: Bearer $TOKEN"

# 4. Submit a job and start it.
JOB=$(curl -fsS "$REWIND/jobs" -H "$AUTH" -H "$JSON" \
  -d "$(jq -n --arg prompt "$PROMPT" --arg agent "$AGENT" \
        '{prompt: $prompt, repository: "tour", agent: $agent}')" | jq -r .id)
curl -fsS -X POST "$REWIND/jobs/$JOB/start" -H "$AUTH" | jq -c .

# 5. Watch its output as it comes (server-sent events, until the job ends).
curl -fsSN "$REWIND/jobs/$JOB/output?follow=1" -H "$AUTH"

# 6. How it ended, what its workspace holds, and the result.
curl -fsS "$REWIND/jobs/$JOB" -H "$AUTH" | jq -c '{status, exitCode}'
curl -fsS "$REWIND/jobs/$JOB/files" -H "$AUTH" | jq -r '.[].name'
curl -fsS "$REWIND/jobs/$JOB/files/$RESULT" -H "$AUTH"
