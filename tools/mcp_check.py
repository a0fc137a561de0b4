#!/usr/bin/env python3
"""Drives `chaosledger mcp` with the reference Python MCP client (PyPI's `mcp`).

As a client agent (--key): lists the tools, reads its account, posts a job before
registering (refused: the message names the rule and the tool to call), registers,
posts and funds a job, reads it back funded with its proof, and funds it again
(refused). With --worker-key, a second agent through a second server registers, is
found by capability, accepts, submits both milestones; the client releases both and
rates; the worker rates; the client sends a sealed message the worker reads. Exits 0
when every step did what it should; prints one JSON line per step.

    python3 tools/mcp_check.py --bin .build/debug/chaosledger --node http://127.0.0.1:8100 \
        --key data/devnet/keys/agent-0.key --worker-key data/devnet/keys/agent-1.key
"""
import argparse, asyncio, json, sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def is_error(r):
    return getattr(r, "is_error", getattr(r, "isError", None))


def text(r):
    return r.content[0].text if r.content else ""


async def main(a):
    failures = []

    def check(step, ok, detail):
        print(json.dumps({"step": step, "ok": bool(ok), "detail": detail}))
        if not ok:
            failures.append(step)

    server = StdioServerParameters(command=a.bin, args=["mcp", "--node", a.node, "--key", a.key])
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            names = sorted(t.name for t in (await s.list_tools()).tools)
            want = {"ledger_status", "read_entity", "find_agents", "register_agent", "post_job", "accept_job", "fund_job",
                    "submit_work", "release_payment", "rate_job", "send_message", "read_messages"}
            check("list_tools", want <= set(names), names)

            st = await s.call_tool("ledger_status", {})
            me = json.loads(text(st))["you"] if not is_error(st) else None
            check("ledger_status", not is_error(st) and me, text(st))
            acct = await s.call_tool("read_entity", {"kind": "account", "id": me})
            balance = json.loads(text(acct)).get("balance", 0) if not is_error(acct) else 0
            check("read_account", not is_error(acct) and balance > 0, text(acct))

            job = {"title": "summarise a paper", "milestones": [300, 700], "deadline_blocks": 500, "capabilities": ["summaries"]}
            early = await s.call_tool("post_job", job)
            check("refused_post", is_error(early) and "not_registered" in text(early) and "register_agent" in text(early), text(early))

            reg = await s.call_tool("register_agent", {"name": "mcp-client", "capabilities": ["summaries"]})
            check("register", not is_error(reg) and json.loads(text(reg)).get("status") == "committed", text(reg))
            posted = await s.call_tool("post_job", job)
            job_id = json.loads(text(posted)).get("job") if not is_error(posted) else None
            check("post_job", job_id, text(posted))
            funded = await s.call_tool("fund_job", {"job": job_id})
            check("fund_job", not is_error(funded) and json.loads(text(funded)).get("status") == "committed", text(funded))
            view = await s.call_tool("read_entity", {"kind": "job", "id": job_id, "proof": True})
            answer = json.loads(text(view)) if not is_error(view) else {}
            j = answer.get("entity", {})
            check("read_job", j.get("funded") is True and j.get("escrowed") == 1000 and answer.get("proof") and answer.get("certificate"),
                  {k: j.get(k) for k in ("status", "funded", "escrowed")})
            again = await s.call_tool("fund_job", {"job": job_id})
            check("refused_fund", is_error(again) and "already_funded" in text(again), text(again))
            bad = await s.call_tool("read_entity", {"kind": "job", "id": "xyz"})
            check("refused_argument", is_error(bad) and "64 hex digits" in text(bad), text(bad))
            if a.worker_key and job_id:
                await work(a, s, me, job_id, check)
    return 1 if failures else 0


def committed(r):
    return not is_error(r) and json.loads(text(r)).get("status") == "committed"


async def work(a, client, client_key, job_id, check):
    """The rest of a job's life, with the worker on a server of its own."""
    server = StdioServerParameters(command=a.bin, args=["mcp", "--node", a.node, "--key", a.worker_key])
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as w:
            await w.initialize()
            worker = json.loads(text(await w.call_tool("ledger_status", {})))["you"]
            check("worker_register", committed(await w.call_tool("register_agent", {"name": "mcp-worker", "capabilities": ["summaries"]})), worker)
            found = await client.call_tool("find_agents", {"capability": "summaries"})
            listed = [x.get("agent") for x in json.loads(text(found)).get("agents", [])] if not is_error(found) else []
            check("find_agents", worker in listed, listed)
            check("accept_job", committed(await w.call_tool("accept_job", {"job": job_id})), job_id)
            for m in (0, 1):
                r = await w.call_tool("submit_work", {"job": job_id, "milestone": m, "result": f"summary part {m}"})
                check(f"submit_work_{m}", committed(r), text(r))
                r = await client.call_tool("release_payment", {"job": job_id, "milestone": m})
                check(f"release_payment_{m}", committed(r), text(r))
            job = json.loads(text(await client.call_tool("read_entity", {"kind": "job", "id": job_id})))
            check("job_completed", job.get("status") == "completed" and job.get("escrowed") == 0, {k: job.get(k) for k in ("status", "escrowed")})
            r = await client.call_tool("rate_job", {"job": job_id, "score": 5, "comment": "clear and on time"})
            check("client_rates", committed(r), text(r))
            r = await w.call_tool("rate_job", {"job": job_id, "score": 4})
            check("worker_rates", committed(r), text(r))
            r = await client.call_tool("send_message", {"to": worker, "text": "thanks, more soon"})
            check("send_message", committed(r), text(r))
            inbox = await w.call_tool("read_messages", {})
            got = json.loads(text(inbox)) if not is_error(inbox) else []
            check("read_messages", any(m.get("text") == "thanks, more soon" and m.get("from") == client_key for m in got), got)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--worker-key")
    sys.exit(asyncio.run(main(p.parse_args())))
