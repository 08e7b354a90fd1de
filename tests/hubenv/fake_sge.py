#!/usr/bin/env python3
"""A tiny stand-in for Grid Engine's qsub/qstat/qdel (and sudo) on one machine, for tests of the
spawner in the hub's env without a cluster. Called through symlinks named qsub, qstat, qdel, qconf, sudo.

State lives in $SGE_ROOT (the tests point settings sge:root there): jobs/<id>.json per job, the
job's script, calls.log (one line per command: how many qstat calls the hub made; a
`qsub -w p|v` check adds a `qsub-check` line with its -now/-w options). Flag files
in $SGE_ROOT change behaviour: `reject` (qsub -now refused), `eqw` (the job goes into error state),
`unfit` (`qsub -w p|v` finds no queue), `slots` (the queue's slots, default 4).
Jobs run at once as local processes (state r, host 127.0.0.1) with a minimal environment, like
SGE: nothing of the caller's environment reaches them.
"""
import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ["SGE_ROOT"])
JOBS = ROOT / "jobs"


def log(*argv):
    with open(ROOT / "calls.log", "a") as handle:
        handle.write(" ".join(argv) + "\n")


def alive(job):
    if job["state"] != "r":
        return True
    try:
        os.kill(job["pid"], 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{job['pid']}/stat") as handle:  # reaped by init, but a zombie is dead too
        return handle.read().split(") ")[1][0] != "Z"


def jobs():
    found = {}
    for path in sorted(JOBS.glob("*.json"), key=lambda p: int(p.stem)):
        job = json.loads(path.read_text())
        if alive(job):
            found[path.stem] = job
        else:
            path.unlink()
    return found


def qsub(args):
    script = sys.stdin.read()
    options = [line[2:].split() for line in script.splitlines() if line.startswith("#$")]
    output = next((o[1] for o in options if o[0] == "-o"), "/dev/null")
    with open(ROOT / "counter", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        job_id = str(int(handle.read() or 0) + 1)
        handle.seek(0)
        handle.truncate()
        handle.write(job_id)
    verify = next((o[1] for o in options if o[0] == "-w"), None)
    if verify in ("p", "v"):  # only check the request, as Grid Engine does: no job
        log("qsub-check", *(" ".join(o) for o in options if o[0] in ("-now", "-w")))
        if (ROOT / "unfit").exists():
            print(f'Unable to run job: Job {job_id} (-l h_vmem=100G) cannot run at host "127.0.0.1" '
                  'because it offers only hc:h_vmem=4.000G', file=sys.stderr)
            print("verification: no suitable queues")
            print("Exiting.", file=sys.stderr)
            return 1
        print("verification: found suitable queue(s)")
        return 0
    (JOBS / f"{job_id}.sh").write_text(script)
    if (ROOT / "reject").exists() and ["-now", "yes"] in options:
        print(job_id)
        print("Your qsub request could not be scheduled, try again later.", file=sys.stderr)
        return 1
    name = next((o[1] for o in options if o[0] == "-N"), "STDIN")
    job = {"owner": os.environ.get("FAKE_SGE_USER", "root"), "state": "r", "host": "127.0.0.1", "name": name}
    if (ROOT / "eqw").exists():
        job.update(state="Eqw", host="", reason=f"can't open output file \"{output}\": Permission denied")
    else:
        output = output.replace("$HOME", os.environ.get("HOME", "/root")).replace("$JOB_ID", job_id)
        env = {"HOME": os.environ.get("HOME", "/root"), "USER": job["owner"], "PATH": "/usr/bin:/bin",
               "JOB_ID": job_id, "SGE_STDOUT_PATH": output, "LANG": "C.UTF-8"}
        with open(output, "a") as out:
            proc = subprocess.Popen(["/bin/bash", str(JOBS / f"{job_id}.sh")], stdout=out, stderr=out,
                                    stdin=subprocess.DEVNULL, env=env, cwd=env["HOME"], start_new_session=True)
        job["pid"] = proc.pid
    (JOBS / f"{job_id}.json").write_text(json.dumps(job))
    print(job_id)
    return 0


def qstat(args):
    if args[:1] == ["-j"]:
        for job_id in args[1].split(","):
            job = jobs().get(job_id)
            if job:
                print("=" * 62 + f"\njob_number:                 {job_id}\nowner:    {job['owner']}")
                if job.get("reason"):
                    print(f"error reason    1:          01/01/2026 00:00:00 [0:1]: error: {job['reason']}")
        return 0
    if args[:1] == ["-f"]:  # qstat -f -F slots -xml [-u * -r | -pe NAME]: one queue instance
        total = int((ROOT / "slots").read_text()) if (ROOT / "slots").exists() else 4
        used = sum(1 for j in jobs().values() if j["state"] == "r")
        print(f"<?xml version='1.0'?>\n<job_info><queue_info><Queue-List><name>all.q@127.0.0.1</name>"
              f"<slots_used>{used}</slots_used><slots_resv>0</slots_resv><slots_total>{total}</slots_total>"
              f'<resource name="slots" type="hc">{total - used}</resource></Queue-List></queue_info>'
              "<job_info></job_info></job_info>")
        return 0
    items = "".join(
        f"<job_list state=\"{'running' if j['state'] == 'r' else 'pending'}\"><JB_job_number>{i}"
        f"</JB_job_number><JB_name>{j.get('name', '')}</JB_name><JB_owner>{j['owner']}</JB_owner><state>{j['state']}</state>"
        f"<queue_name>{'all.q@' + j['host'] if j['host'] else ''}</queue_name></job_list>"
        for i, j in jobs().items())
    print(f"<?xml version='1.0'?>\n<job_info><queue_info>{items}</queue_info><job_info></job_info></job_info>")
    return 0


def qdel(args):
    job = jobs().get(args[0])
    if not job:
        print(f'denied: job "{args[0]}" does not exist', file=sys.stderr)
        return 1
    if job.get("pid"):
        notify = "-notify" in (JOBS / f"{args[0]}.sh").read_text().split()
        try:  # -notify: SIGUSR2 first, SIGKILL after the queue's notify time (here 5 s)
            os.killpg(job["pid"], signal.SIGUSR2 if notify else signal.SIGKILL)
        except ProcessLookupError:
            pass
        if notify:
            subprocess.Popen(["sh", "-c", f"sleep 5; kill -KILL -- -{job['pid']} 2>/dev/null"],
                             start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(f"root has registered the job {args[0]} for deletion")
            return 0
    (JOBS / f"{args[0]}.json").unlink()
    print(f"root has deleted job {args[0]}")
    return 0


def qconf(args):
    # managers and operators (the spawner refuses them); nothing else is asked of the fake
    if args == ["-sm"]:
        print("sgeadmin")
        return 0
    print("no operator defined", file=sys.stderr)
    return 1


def sudo(args):
    # sudo -n -u USER command...: run the command (as this user; the fake has no accounts)
    assert args[:2] == ["-n", "-u"], args
    os.environ["FAKE_SGE_USER"] = args[2]
    os.execv(args[3], args[3:])


def main():
    JOBS.mkdir(parents=True, exist_ok=True)
    name = os.path.basename(sys.argv[0])
    log(name, *sys.argv[1:])
    return {"qsub": qsub, "qstat": qstat, "qdel": qdel, "qconf": qconf, "sudo": sudo}[name](sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
