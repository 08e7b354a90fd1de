"""Unit tests of the spawner package's plain part (salt/jupyterhub/files/sgespawner: the modules
options, tokenfile, gridengine): the form
fields and every refusal, the qsub options and job script, the token file, the Grid Engine
commands and the shared poller. No JupyterHub needed (the hub layer is tested in tests/hubenv)."""

import asyncio
import copy
import json
import os
import pathlib
import shutil
import stat
import sys
import tempfile
import types

import pytest
import yaml

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "salt/jupyterhub/files/sgespawner"))
from sgespawner import gridengine, jobs, options, tokenfile  # noqa: E402

# one namespace for the plain API, as the tests call it
sg = types.SimpleNamespace(**{
    name: getattr(module, name) for module in (options, tokenfile, jobs, gridengine)
    for name in dir(module) if not name.startswith("__")
})

TEMPLATE = (REPO / "salt/jupyterhub/files/templates/sgespawner-job.sh.j2").read_text()
RECORDED = REPO / "tests/unit/files/sge"


def recorded(name):
    data = json.loads((RECORDED / f"{name}.json").read_text())
    return data["retcode"], data["stdout"], data["stderr"]


@pytest.fixture(scope="module")
def defaults():
    return yaml.safe_load((REPO / "salt/jupyterhub/defaults.yaml").read_text())["jupyterhub"]


@pytest.fixture
def spec(defaults):
    """The pillar defaults with every field enabled: projects, and GPUs in gpu.q / project ml."""
    spec = copy.deepcopy(defaults["spawner"])
    fields = spec["fields"]
    for field in fields.values():
        field["enabled"] = True
    fields["project"]["choices"] = {"ml": "Machine learning", "chem": "Chemistry"}
    fields["queue"]["choices"]["gpu.q"] = "GPU nodes"
    fields["gpus"].update(max=4, queues=["gpu.q"], projects=["ml"])
    return spec


def refusals(options, spec, live=None):
    with pytest.raises(sg.Refused) as info:
        sg.validate(options, spec, live)
    return info.value.errors


# ------------------------------------------------------------------------------- validation

def test_pillar_defaults_are_a_valid_request(defaults):
    assert sg.validate({}, defaults["spawner"]) == {
        "project": "", "queue": "all.q", "pe": "smp", "slots": 1, "ram": 2, "gpus": 0,
        "runtime": "08:00:00", "email": "", "ui": "lab",
    }


def test_every_field_has_a_label_and_a_directive(defaults):
    fields = defaults["spawner"]["fields"]
    assert list(fields) == list(sg.FIELDS)
    for name, field in fields.items():
        assert field["label"] and "directive" in field, name


def test_valid_values_of_every_field_are_normalised(spec):
    request = sg.validate({
        "project": "ml", "queue": " gpu.q ", "pe": "smp", "slots": "4", "ram": 8, "gpus": "2",
        "runtime": "1:30:00", "email": "alice.smith+jh@example.org",
    }, spec)
    assert request == {
        "project": "ml", "queue": "gpu.q", "pe": "smp", "slots": 4, "ram": 8, "gpus": 2,
        "runtime": "01:30:00", "email": "alice.smith+jh@example.org", "ui": "lab",
    }


def test_optional_choices_may_be_empty(spec):
    request = sg.validate({"project": "", "pe": "", "slots": "1", "email": ""}, spec)
    assert request["project"] == request["pe"] == request["email"] == ""


@pytest.mark.parametrize("options, message", [
    # unknown and hidden fields
    ({"image": "x"}, "image: unknown field; fields: project, queue, pe, slots, ram, gpus, runtime, email"),
    ({"bad key\n": "x"}, "'bad key\\n': unknown field"),
    # project
    ({"project": "physics"}, "project: 'physics' is not allowed; allowed: ml, chem (or empty)"),
    ({"project": "ml\nchem"}, "project: line breaks and control characters are not allowed"),
    # queue
    ({"queue": "long.q"}, "queue: 'long.q' is not allowed; allowed: all.q, gpu.q"),
    ({"queue": ""}, "queue: a value is required; allowed: all.q, gpu.q"),
    ({"queue": "all.q -l h_rt=999:00:00"}, "queue: 'all.q -l h_rt=999:00:00' is not allowed"),
    ({"queue": "all.q\n#$ -V"}, "queue: line breaks and control characters are not allowed"),
    # pe
    ({"pe": "mpi"}, "pe: 'mpi' is not allowed; allowed: smp (or empty)"),
    ({"pe": "smp\r"}, "pe: line breaks and control characters are not allowed"),
    # slots
    ({"slots": "12"}, "slots: 12 is out of range; allowed 1-8"),
    ({"slots": "0"}, "slots: 0 is out of range; allowed 1-8"),
    ({"slots": "-1"}, "slots: '-1' is not a whole number; allowed 1-8"),
    ({"slots": "2.5"}, "slots: '2.5' is not a whole number; allowed 1-8"),
    ({"slots": "4;id"}, "slots: '4;id' is not a whole number; allowed 1-8"),
    ({"slots": "99999999999"}, "slots: '99999999999' is not a whole number; allowed 1-8"),
    ({"slots": ""}, "slots: '' is not a whole number; allowed 1-8"),
    # ram (GB per core)
    ({"ram": "64"}, "ram: 64 is out of range; allowed 1-16"),
    ({"ram": 1.5}, "ram: '1.5' is not a whole number; allowed 1-16"),
    ({"ram": "2G"}, "ram: '2G' is not a whole number; allowed 1-16"),
    # gpus
    ({"gpus": "5", "queue": "gpu.q"}, "gpus: 5 is out of range; allowed 0-4"),
    ({"gpus": "1", "queue": "all.q", "project": "ml"},
     "gpus: queue all.q has no GPUs; request 0 GPUs or choose queue gpu.q"),
    ({"gpus": "1", "queue": "gpu.q", "project": "chem"},
     "gpus: project chem has no GPUs; request 0 GPUs or choose project ml"),
    # runtime
    ({"runtime": "99:00:00"}, "runtime: 99:00:00 is longer than the maximum 72:00:00"),
    ({"runtime": "00:00:00"}, "runtime: 00:00:00 is too short; allowed up to 72:00:00"),
    ({"runtime": "1h"}, "runtime: '1h' is not a run time hh:mm:ss; at most 72:00:00"),
    ({"runtime": "10:60:00"}, "runtime: '10:60:00' is not a run time hh:mm:ss"),
    ({"runtime": "01:00"}, "runtime: '01:00' is not a run time hh:mm:ss"),
    ({"runtime": "01:00:00\n"}, "runtime: line breaks and control characters are not allowed"),
    # email
    ({"email": "alice"}, "email: 'alice' is not an e-mail address"),
    ({"email": "a@b.org,c@d.org"}, "email: 'a@b.org,c@d.org' is not an e-mail address"),
    ({"email": "a@b.org -M evil@x.org"}, "email: 'a@b.org -M evil@x.org' is not an e-mail address"),
    ({"email": "$(id)@b.org"}, "email: '$(id)@b.org' is not an e-mail address"),
    ({"email": "a@b.org\x00"}, "email: line breaks and control characters are not allowed"),
    ({"email": "x" * 300 + "@b.org"}, "email: longer than 254 characters"),
    # control characters anywhere, and values that are not one value
    ({"queue": "all.q\t"}, "queue: line breaks and control characters are not allowed"),
    ({"queue": "\x1b[31mall.q"}, "queue: line breaks and control characters are not allowed"),
    ({"queue": ["all.q", "gpu.q"]}, "queue: expected one value, got ['all.q', 'gpu.q']"),
    ({"slots": None}, "slots: expected one value, got None"),
    ({"slots": True}, "slots: expected one value, got True"),
    ({"queue": {"a": 1}}, "queue: expected one value"),
    ({"queue": "q" * 101}, "queue: longer than 100 characters"),
    # combinations Grid Engine would reject
    ({"slots": "2", "pe": ""}, "pe: 2 slots need a parallel environment; allowed: smp"),
])
def test_refusals_name_the_field_and_the_allowed_values(spec, options, message):
    errors = refusals(options, spec)
    assert any(e.startswith(message) for e in errors), errors


def test_gpus_split_over_slots_when_the_complex_counts_per_slot(spec):
    spec["fields"]["gpus"]["per"] = "slot"
    errors = refusals({"queue": "gpu.q", "project": "ml", "gpus": "3", "slots": "2"}, spec)
    assert errors == ["gpus: 3 GPUs cannot be split evenly over 2 slots"]
    assert sg.validate({"queue": "gpu.q", "project": "ml", "gpus": "4", "slots": "2"}, spec)["gpus"] == 4


def test_gpus_anywhere_when_pillar_names_no_gpu_queues(spec):
    spec["fields"]["gpus"].update(queues=[], projects=[])
    assert sg.validate({"queue": "all.q", "gpus": "1"}, spec)["gpus"] == 1


def test_fields_that_are_not_enabled_are_refused_and_use_their_default(defaults):
    spec = defaults["spawner"]
    assert refusals({"project": "ml", "gpus": "1"}, spec) == [
        "project: not offered here; fields: queue, pe, slots, ram, runtime, email, ui",
        "gpus: not offered here; fields: queue, pe, slots, ram, runtime, email, ui",
    ]
    hidden = copy.deepcopy(spec)
    hidden["fields"]["queue"].update(enabled=False, default="all.q")
    assert sg.validate({}, hidden)["queue"] == "all.q"


def test_all_problems_are_reported_at_once(spec):
    errors = refusals({"slots": "99", "ram": "0", "email": "x", "colour": "red"}, spec)
    assert [e.split(":")[0] for e in errors] == ["colour", "slots", "ram", "email"]
    assert str(sg.Refused(errors)) == "\n".join(errors)


def test_options_must_be_a_mapping(spec):
    assert refusals(["queue"], spec) == ["options: expected a mapping of field names, got ['queue']"]


def test_live_qconf_lists_refuse_what_the_cluster_does_not_define(spec):
    errors = refusals({"queue": "gpu.q"}, spec, live={"queue": ["all.q"], "pe": ["smp"]})
    assert errors == ["queue: gpu.q is not defined in Grid Engine (qconf -sql: all.q)"]
    # qconf failed (None): no live check
    assert sg.validate({"queue": "gpu.q"}, spec, live={"queue": None})["queue"] == "gpu.q"


def test_form_data_becomes_one_value_per_field():
    form = {"_xsrf": ["t"], "queue": ["all.q"], "slots": ["2"], "pe": ["smp", "mpi"]}
    assert sg.form_to_options(form) == {"queue": "all.q", "slots": "2", "pe": ["smp", "mpi"]}


def test_form_fields_show_enabled_fields_with_previous_valid_values(defaults):
    spec = defaults["spawner"]
    fields = sg.form_fields(spec, previous={"slots": "4", "runtime": "02:00:00"})
    assert [f["name"] for f in fields] == ["queue", "pe", "slots", "ram", "runtime", "email", "ui"]
    by_name = {f["name"]: f for f in fields}
    assert by_name["slots"]["value"] == 4 and by_name["runtime"]["value"] == "02:00:00"
    assert by_name["slots"]["min"] == 1 and by_name["slots"]["max"] == 8
    assert by_name["queue"]["choices"] == [("all.q", "Default queue")]
    assert by_name["pe"]["optional"] is True and by_name["queue"]["optional"] is False
    assert "72:00:00" in by_name["runtime"]["help"]
    # previous options that are no longer valid (pillar changed): the defaults
    assert {f["name"]: f["value"] for f in sg.form_fields(spec, {"queue": "gone.q"})}["queue"] == "all.q"


# ---------------------------------------------------------------------------------- the job

def test_job_options_come_from_the_pillar_directives(spec):
    request = sg.validate({"project": "ml", "queue": "gpu.q", "slots": "2", "pe": "smp", "ram": "4",
                           "gpus": "2", "runtime": "00:30:00", "email": "a@b.org"}, spec)
    assert sg.job_options(request, spec) == [
        "-now yes", "-P ml", "-q gpu.q", "-pe smp 2", "-l h_vmem=4G", "-l gpu=2",
        "-l h_rt=00:30:00", "-m ea -M a@b.org",
    ]


def test_empty_values_add_no_option_and_immediate_is_a_switch(spec):
    spec["immediate"] = False
    spec["extra_options"] = ["-l arch=lx-amd64"]
    request = sg.validate({"pe": "", "email": ""}, spec)
    assert sg.job_options(request, spec) == ["-q all.q", "-l h_vmem=2G", "-l h_rt=08:00:00",
                                             "-l arch=lx-amd64"]


def test_ram_and_gpus_follow_how_the_complex_counts(spec):
    spec["fields"]["ram"].update(per="job", complex="mem_free")
    spec["fields"]["gpus"].update(per="slot", complex="gpu", directive="-l {complex}={amount}")
    request = sg.validate({"project": "ml", "queue": "gpu.q", "slots": "4", "ram": "3", "gpus": "4"}, spec)
    options = sg.job_options(request, spec)
    assert "-l mem_free=12G" in options  # 3 GB per core x 4 slots, requested once per job
    assert "-l gpu=1" in options  # 4 GPUs = 1 per slot x 4 slots: one GPU is one GPU


def render(spec, request, **extra):
    context = dict(username="alice", job_name="jupyterhub", output=spec["output"],
                   options=sg.job_options(request, spec), env_file="/srv/jupyterhub/secrets/ab 12.env",
                   request=request, path="/opt/jupyterhub/venv/bin:/usr/bin:/bin", prologue="",
                   cmd="batchspawner-singleuser jupyterhub-singleuser")
    context.update(extra)
    return sg.render_job_script(TEMPLATE, **context)


def test_job_script_from_the_shipped_template(spec):
    request = sg.validate({"slots": "2", "pe": "smp", "runtime": "00:30:00"}, spec)
    script = render(spec, request)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    directives = [line for line in lines if line.startswith("#$")]
    assert directives == [
        "#$ -clear", "#$ -S /bin/bash", "#$ -notify", "#$ -N jupyterhub", "#$ -j y",
        "#$ -o $HOME/.jupyterhub.sge.log",
        "#$ -now yes", "#$ -q all.q", "#$ -pe smp 2", "#$ -l h_vmem=2G", "#$ -l h_rt=00:30:00",
    ]
    assert "export PATH=/opt/jupyterhub/venv/bin:/usr/bin:/bin" in lines
    assert ". '/srv/jupyterhub/secrets/ab 12.env'" in lines  # quoted for the shell
    assert "set -euo pipefail" in lines
    assert "-v" not in " ".join(directives) and "-V" not in " ".join(directives)


def test_job_script_carries_no_secret_and_no_raw_input(spec):
    request = sg.validate({"email": "a@b.org"}, spec)
    script = render(spec, request)
    assert "TOKEN=" not in script and "JUPYTERHUB_API_TOKEN" in script  # only read from the file
    # what reaches a #$ line was validated; raw input never gets there
    with pytest.raises(sg.Refused):
        sg.validate({"email": "a@b.org\n#$ -V"}, spec)


def test_job_script_template_refuses_unknown_variables(spec):
    with pytest.raises(Exception, match="undefined"):
        sg.render_job_script("{{ nosuchvar }}", **{})


# ------------------------------------------------------------------------------ token file

def test_secret_env_file_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "a.env"
    sg.write_secret_env(str(path), {"JUPYTERHUB_API_TOKEN": "s3cr3t x", "A": "it's", "bad key": "x"}, 4321)
    assert path.read_text() == "export A='it'\"'\"'s'\nexport JUPYTERHUB_API_TOKEN='s3cr3t x'\n"
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o007 == 0 and mode & 0o070 in (0o040, 0o000)  # nothing for others; group bits = ACL mask
    acl = os.getxattr(path, "system.posix_acl_access")
    assert acl == sg._acl_user_read(4321)
    # the named user entry: tag ACL_USER (2), perm r (4), the uid
    assert (2, 4, 4321) in [tuple(int.from_bytes(acl[i + o:i + o + n], "little") for o, n in ((0, 2), (2, 2), (4, 4)))
                            for i in range(4, len(acl), 8)]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_secret_env_file_readers():
    directory = tempfile.mkdtemp(prefix="sgespawner-")  # in /tmp: other users may traverse
    os.chmod(directory, 0o711)
    path = pathlib.Path(directory) / "b.env"
    sg.write_secret_env(str(path), {"T": "x"}, 65534)

    def can_read(uid):
        pid = os.fork()
        if pid == 0:
            os.setuid(uid)
            try:
                path.read_text()
                os._exit(0)
            except PermissionError:
                os._exit(1)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0

    try:
        assert can_read(65534) and not can_read(65533)
    finally:
        shutil.rmtree(directory)


def test_secret_env_file_is_never_written_through_an_existing_file_or_link(tmp_path):
    target = tmp_path / "target"
    target.write_text("keep")
    link = tmp_path / "c.env"
    link.symlink_to(target)
    with pytest.raises(FileExistsError):
        sg.write_secret_env(str(link), {"T": "x"}, 1000)
    assert target.read_text() == "keep"
    sg.remove_file(str(link))
    sg.remove_file(str(link))  # already gone: fine
    assert not link.exists() and target.exists()


# -------------------------------------------------------------------------- Grid Engine

def test_qstat_xml_of_all_users():
    """The poller's view: {job id: its first record} (the model itself: tests/unit/test_sgejobs.py)."""
    jobs = sg.parse_qstat_xml(recorded("qstat_xml_all")[1])
    assert jobs["1"][:5] == ("1", "r", "alice", "jhtb-q", "sleeper") and jobs["1"].started
    assert jobs["5"].state == "qw" and not jobs["5"].started and not jobs["5"].failed
    assert jobs["4"].failed and not jobs["4"].started
    assert jobs["3"].state == "hqw"
    assert jobs["6"].started  # array job listed twice: its first (running) line counts
    assert sg.parse_qstat_xml(recorded("qstat_xml_all_empty")[1]) == {}
    assert sg.Job("7", "dr", "bob", "h").gone and not sg.Job("7", "dr", "bob", "h").started
    assert sg.Job("8", "s", "bob", "h").started  # suspended: the session is kept


def _qstat_doc(*records):
    return ("<?xml version='1.0'?>\n<job_info  xmlns:xsd=\"http://arc.liu.se/\">\n  <queue_info>\n"
            + "".join(records) + "  </queue_info>\n  <job_info>\n  </job_info>\n</job_info>\n")


def _record(job_id, name, owner="bob", state="r"):
    return (f"    <job_list state=\"running\">\n      <JB_job_number>{job_id}</JB_job_number>\n"
            f"      <JB_name>{name}</JB_name>\n      <JB_owner>{owner}</JB_owner>\n"
            f"      <state>{state}</state>\n      <queue_name>all.q@node1</queue_name>\n    </job_list>\n")


@pytest.mark.parametrize("name", [
    "evil\x01\x07\x1bname",  # control characters: not allowed in XML 1.0
    "x" * 5000,  # very long
    "caf\ufffd-\ufffd",  # non-UTF-8 bytes, as decoded by run() (errors="replace")
    "a\ufffeb",  # a character XML forbids
])
def test_another_users_job_name_cannot_blind_the_poller(name):
    text = _qstat_doc(_record("1", "jupyterhub-0123456789", "alice"), _record("2", name, "mallory"))
    jobs = sg.parse_qstat_xml(text)
    assert jobs["1"][:5] == ("1", "r", "alice", "node1", "jupyterhub-0123456789") and jobs["1"].started
    assert jobs["2"].owner == "mallory"


def test_an_unreadable_record_is_skipped_and_the_rest_is_kept(caplog):
    broken = "    <job_list state=\"running\"><JB_job_number>2</JB_job_number><JB_name>a<b</JB_name></job_list>\n"
    jobs = sg.parse_qstat_xml(_qstat_doc(_record("1", "mine", "alice"), broken, _record("3", "other")))
    assert sorted(jobs) == ["1", "3"] and jobs["1"].started
    assert "skipped a job record that cannot be read" in caplog.text


def test_a_job_number_listed_twice_keeps_its_first_record():
    jobs = sg.parse_qstat_xml(_qstat_doc(_record("1", "mine", "alice"), _record("1", "fake", "mallory", "dr")))
    assert jobs["1"].owner == "alice" and jobs["1"].started


def test_a_document_cut_off_is_not_trusted():
    with pytest.raises(sg.ET.ParseError):
        sg.parse_qstat_xml(_qstat_doc(_record("1", "mine", "alice"))[:-40])


def test_qstat_j_reasons():
    reasons = sg.parse_qstat_j(recorded("qstat_j_4")[1])
    assert reasons == {"4": "11/26/2026 06:54:44 [1000:6377]: error: can't chdir to /nonexistent: "
                            "No such file or directory"}
    text = ("==============================================================\njob_number:  9\n"
            "scheduling info:            queue instance \"all.q@q\" dropped because it is full\n"
            "                            All queues dropped because of overload or full\n"
            "==============================================================\njob_number:  10\n"
            "owner:   bob\n")
    assert sg.parse_qstat_j(text) == {
        "9": 'queue instance "all.q@q" dropped because it is full; All queues dropped because of overload or full'}


class FakeRun:
    """Records every command; answers from a function of argv."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    async def __call__(self, argv, input=None, env=None, timeout=60):
        self.calls.append({"argv": argv, "input": input, "env": env})
        result = self.answer(argv)
        return await result if asyncio.iscoroutine(result) else result


SGE = {"root": "/var/lib/gridengine", "cell": "default", "qsub": "/usr/bin/qsub", "qstat": "/usr/bin/qstat",
       "qdel": "/usr/bin/qdel", "qconf": "/usr/bin/qconf"}


def test_cluster_commands():
    fake = FakeRun(lambda argv: (0, "17", ""))
    cluster = sg.Cluster(SGE, fake)
    asyncio.run(cluster.qsub("alice", "#!/bin/bash\n"))
    asyncio.run(cluster.qdel("alice", "17"))
    asyncio.run(cluster.qstat())
    asyncio.run(cluster.qstat_j(["17", "18"]))
    assert [c["argv"] for c in fake.calls] == [
        ["sudo", "-n", "-u", "alice", "/usr/bin/qsub", "-terse"],  # no -V, no -v: nothing from the hub's env
        ["sudo", "-n", "-u", "alice", "/usr/bin/qdel", "17"],
        ["/usr/bin/qstat", "-xml", "-u", "*"],
        ["/usr/bin/qstat", "-j", "17,18"],
    ]
    assert fake.calls[0]["input"] == "#!/bin/bash\n"
    for call in fake.calls:  # no token, no proxy secret: only what the Grid Engine clients need
        assert sorted(call["env"]) == ["LANG", "PATH", "SGE_CELL", "SGE_ROOT"]
        assert call["env"]["SGE_ROOT"] == "/var/lib/gridengine"


def test_qconf_lists_are_cached_and_failures_skip_the_check():
    answers = {"-sql": recorded("sql"), "-sprjl": recorded("sprjl_empty"), "-spl": (1, "", "error: commlib")}
    fake = FakeRun(lambda argv: answers[argv[1]])
    cluster = sg.Cluster(SGE, fake)
    fields = {"project": {"check_qconf": True}, "queue": {"check_qconf": True}, "pe": {"check_qconf": True}}
    live = asyncio.run(cluster.live_lists(fields))
    assert live["queue"] == recorded("sql")[1].split() and live["project"] == [] and live["pe"] is None
    asyncio.run(cluster.live_lists(fields))
    assert [c["argv"][1] for c in fake.calls].count("-sql") == 1  # cached
    assert asyncio.run(cluster.live_lists({n: {} for n in fields})) == {}


def test_a_class_pressing_start_at_once_runs_one_qconf_per_list():
    """50 forms checked at the same moment, with nothing cached yet: one qconf per list, and every
    form gets its answer."""
    async def slow_answer(argv):
        await asyncio.sleep(0.05)
        return recorded("sql") if argv[1] == "-sql" else (0, "smp\nmpi", "")
    fake = FakeRun(slow_answer)
    cluster = sg.Cluster(SGE, fake)
    fields = {"project": {}, "queue": {"check_qconf": True}, "pe": {"check_qconf": True}}

    async def class_of_50():
        return await asyncio.gather(*(cluster.live_lists(fields) for _ in range(50)),
                                    *(cluster.sge_privileged() for _ in range(50)))
    answers = asyncio.run(class_of_50())
    assert sorted(c["argv"][1] for c in fake.calls) == ["-sm", "-so", "-spl", "-sql"]
    assert all(a == {"queue": recorded("sql")[1].split(), "pe": ["smp", "mpi"]} for a in answers[:50])


def test_run_real_commands():
    assert asyncio.run(sg.run(["sh", "-c", "cat; echo err >&2; exit 3"], input="in")) == (3, "in", "err")
    assert asyncio.run(sg.run(["/nonexistent/qsub"]))[0] == 127
    assert asyncio.run(sg.run(["sleep", "5"], timeout=0.2))[0] == 124


def test_run_abandons_a_command_it_may_not_kill(monkeypatch):
    """A command run through sudo belongs to root: killing it raises PermissionError in the hub."""
    class RootOwned:  # what the hub sees of `sudo -u alice qsub` that hangs
        killed = False

        async def communicate(self, data=None):
            await asyncio.sleep(3600)

        def kill(self):
            raise PermissionError(1, "Operation not permitted")

    async def exec_sudo(*argv, **kwargs):
        return RootOwned()

    monkeypatch.setattr(sg.asyncio, "create_subprocess_exec", exec_sudo)
    rc, out, err = asyncio.run(sg.run(["sudo", "-n", "-u", "alice", "/usr/bin/qsub"], timeout=0.1))
    assert (rc, out) == (124, "") and err == "sudo did not answer within 0.1 s"


def test_cluster_waits_longer_than_sudo_lets_the_command_run():
    timeouts = []

    async def runner(argv, input=None, env=None, timeout=60):
        timeouts.append(timeout)
        return 0, "", ""

    cluster = sg.Cluster(dict(SGE, command_timeout=30), runner)
    asyncio.run(cluster.qsub("alice", "#!/bin/bash\n"))
    asyncio.run(cluster.qdel("alice", "1"))
    assert timeouts == [40, 40]


def qstat_answer(state):
    """A fake cluster whose qstat lists `state` = {job id: (state, host)} at the time of the call."""

    def answer(argv):
        if argv[0] == "/usr/bin/qstat" and argv[1] == "-xml":
            if state.get("fail"):
                return 1, "", "error: commlib error: got select error (Connection refused)"
            jobs = "".join(
                f"<job_list><JB_job_number>{i}</JB_job_number><JB_owner>u</JB_owner><state>{s}</state>"
                f"<queue_name>{'all.q@' + h if h else ''}</queue_name></job_list>"
                for i, (s, h) in state.items() if i != "fail")
            return 0, f"<job_info><queue_info>{jobs}</queue_info></job_info>", ""
        if argv[1] == "-j":
            return 0, "".join(f"job_number: {i}\nerror reason 1: 01/01/2026 [1:2]: can't open output\n"
                              for i in argv[2].split(",")), ""
        return 0, "", ""

    return answer


def test_poller_one_qstat_per_round_whatever_the_number_of_sessions():
    async def scenario():
        state = {str(i): ("r", "node1") for i in range(1, 11)}
        fake = FakeRun(qstat_answer(state))
        poller = sg.JobPoller(sg.Cluster(SGE, fake), interval=0.05, fast_interval=0.01, min_gap=0)
        gone = []
        for i in range(1, 11):
            poller.watch[str(i)] = lambda i=i: gone.append(str(i))
        await poller.next_update()
        statuses = [poller.status(str(i)) for i in range(1, 11)]
        assert all(s.started and s.host == "node1" for s in statuses)
        for _ in range(5):
            await poller.next_update()
        assert len(fake.calls) == poller.qstat_calls == poller.generation  # one call per round
        del state["3"]  # qdel behind the hub's back: noticed at the next round
        await poller.next_update()
        assert poller.status("3") is None and gone == ["3"]
        poller._task.cancel()

    asyncio.run(scenario())


SERVER = """import signal, sys, time
log = open(sys.argv[1], "a", buffering=1)
def term(*_):
    log.write("term\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
ignored = [signal.getsignal(s) == signal.SIG_IGN for s in (signal.SIGUSR1, signal.SIGUSR2)]
log.write(f"started, USR1/USR2 ignored: {ignored}\\n")
while True:
    time.sleep(0.05)
"""


@pytest.mark.parametrize("crash", [False, True], ids=["grid-engine-ends-it", "the-server-fails"])
def test_the_job_script_ends_its_server_cleanly_on_grid_engines_warning_and_tells_the_hub(spec, tmp_path, crash):
    """The shipped job script under bash, signalled as Grid Engine does with -notify (measured on a
    real cell: SIGUSR1 before a suspend, SIGUSR2 twice to the whole process group before a kill):
    the server survives USR1, is stopped with SIGTERM (not killed by USR2) and the hub hears
    {"exit_status": 140}; a stand-in hub on loopback takes the reports."""
    import http.server
    import signal
    import subprocess
    import threading
    import time

    reports = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            reports.append((self.path, self.headers["Authorization"], json.loads(body)))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args):
            pass

    def ends():
        return [r[2] for r in reports if "port" not in r[2]]

    hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=hub.serve_forever, daemon=True).start()
    env_file, log, server = tmp_path / "job.env", tmp_path / "server.log", tmp_path / "server.py"
    env_file.write_text(f"JUPYTERHUB_API_URL=http://127.0.0.1:{hub.server_port}/hub/api\n"
                        "JUPYTERHUB_API_TOKEN=t0ken\nJUPYTERHUB_SERVICE_URL=http://127.0.0.1:0/user/alice/\n")
    server.write_text('import sys\nprint("broken config")\nsys.exit(3)\n' if crash else SERVER)
    request = sg.validate({}, spec)
    script = tmp_path / "job.sh"
    script.write_text(render(spec, request, env_file=str(env_file), path="/usr/bin:/bin",
                             cmd=f"{sys.executable} {server} {log}"))
    output = open(tmp_path / "job.out", "w")  # noqa: SIM115 - the job's -o file, closed below
    job = subprocess.Popen(["bash", str(script)], start_new_session=True, stdout=output, stderr=output,
                           env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                "SGE_STDOUT_PATH": str(tmp_path / "job.out")})
    try:
        if crash:  # the server fails by itself: its exit status and the end of its output
            assert job.wait(timeout=30) == 3
            # the port report goes out in the background: under load it may come second, or not yet
            assert ends() == [{"exit_status": 3, "output": "broken config\n"}]
            return
        deadline = time.monotonic() + 30
        while "started" not in (log.read_text() if log.exists() else "") or not reports:
            assert time.monotonic() < deadline and job.poll() is None, "the server did not start"
            time.sleep(0.05)
        assert "USR1/USR2 ignored: [True, True]" in log.read_text()
        assert reports[0][0] == "/hub/api/batchspawner" and reports[0][1] == "token t0ken"
        assert list(reports[0][2]) == ["port"]
        os.killpg(job.pid, signal.SIGUSR1)  # a suspend follows: nothing ends
        time.sleep(0.5)
        assert job.poll() is None and "term" not in log.read_text()
        os.killpg(job.pid, signal.SIGUSR2)
        os.killpg(job.pid, signal.SIGUSR2)
        assert job.wait(timeout=30) == 0  # the server stopped cleanly on SIGTERM
        assert log.read_text().count("term") == 1
        assert ends() == [{"exit_status": 140, "output": ""}]  # once
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        hub.shutdown()
        output.close()


def test_next_update_waits_for_a_qstat_begun_after_it():
    """Under load a qstat runs for seconds: a job submitted meanwhile is not in that answer, and a
    spawn that took it for "the next snapshot" would call its new job gone."""
    async def scenario():
        state = {}
        asked = asyncio.Event()

        async def slow_qstat(argv, input=None, env=None, timeout=60):
            listed = dict(state)  # what qmaster lists when asked
            asked.set()
            await asyncio.sleep(0.2)
            return qstat_answer(listed)(argv)

        poller = sg.JobPoller(sg.Cluster(SGE, slow_qstat), interval=30, fast_interval=30, min_gap=0)
        poller.kick()
        try:
            await asked.wait()  # a qstat is under way
            state["5"] = ("r", "node1")  # the submit returns meanwhile
            await asyncio.wait_for(poller.next_update(kick=True), 5)
            return poller.status("5")
        finally:
            poller._task.cancel()

    job = asyncio.run(scenario())
    assert job is not None and job.started


def test_poller_failing_qstat_means_unknown_never_gone():
    async def scenario():
        state = {"1": ("r", "node1")}
        poller = sg.JobPoller(sg.Cluster(SGE, FakeRun(qstat_answer(state))), interval=0.02, min_gap=0)
        fired = []
        poller.watch["1"] = lambda: fired.append(1)
        await poller.ready()
        assert poller.status("1").started
        state["fail"] = True
        await poller.next_update()
        assert poller.status("1") is sg.UNKNOWN and poller.status("2") is sg.UNKNOWN and not fired
        del state["fail"]
        await poller.next_update()
        assert poller.status("1").started and not fired
        poller._task.cancel()

    asyncio.run(scenario())


def test_poller_fetches_reasons_of_starting_jobs_in_one_extra_call():
    async def scenario():
        state = {"7": ("Eqw", ""), "8": ("Eqw", ""), "9": ("r", "n")}
        fake = FakeRun(qstat_answer(state))
        poller = sg.JobPoller(sg.Cluster(SGE, fake), interval=5, fast_interval=0.01, min_gap=0)
        poller.starting.update({"7", "8", "9"})
        await poller.next_update(kick=True)
        assert [c["argv"] for c in fake.calls] == [["/usr/bin/qstat", "-xml", "-u", "*"],
                                                   ["/usr/bin/qstat", "-j", "7,8"]]
        assert poller.reasons["7"].endswith("can't open output") and poller.qstat_calls == 2
        poller._task.cancel()

    asyncio.run(scenario())


def test_poller_polls_fast_while_busy_and_at_once_when_kicked():
    async def scenario():
        fake = FakeRun(qstat_answer({}))
        poller = sg.JobPoller(sg.Cluster(SGE, fake), interval=30, fast_interval=0.01, min_gap=0)
        await poller.ready()
        start = asyncio.get_running_loop().time()
        await poller.next_update(kick=True)  # kicked: no 30 s wait
        poller.busy += 1
        poller.kick()  # (stop() and start() kick when they make the poller busy)
        for _ in range(3):
            await poller.next_update()  # busy: fast interval
        assert asyncio.get_running_loop().time() - start < 2
        poller._task.cancel()

    asyncio.run(scenario())


# ------------------------------------------------------------------------ who gets servers

ACCESS = {"group": "jupyterhub-users", "privileged_groups": ["sudo", "wheel", "admin"], "min_uid": 1000}


@pytest.fixture
def accounts(monkeypatch):
    """alice (ordinary, in the group), admin (group sudo), outsider (not in the group), daemon."""
    users = {"alice": 1002, "admin": 1000, "outsider": 1003, "daemon": 1, "sgemgr": 1004}
    groups = {100: ("users", []), 27: ("sudo", ["admin"]),
              990: ("jupyterhub-users", ["alice", "admin", "daemon", "sgemgr"])}

    def getpwnam(name):
        if name not in users:
            raise KeyError(name)
        return sg.pwd.struct_passwd((name, "x", users[name], 100, "", "/home/" + name, "/bin/sh"))

    monkeypatch.setattr(sg.pwd, "getpwnam", getpwnam)
    monkeypatch.setattr(sg.grp, "getgrgid", lambda gid: sg.grp.struct_group((groups[gid][0], "x", gid, [])))
    monkeypatch.setattr(sg.os, "getgrouplist",
                        lambda name, gid: [gid] + [g for g, (_, members) in groups.items() if name in members])


def test_only_ordinary_members_of_the_group_get_servers(accounts):
    assert sg.account_refusal("alice", ACCESS, {"root", "sgeadmin"}) == ""
    assert "privileged account (group sudo)" in sg.account_refusal("admin", ACCESS, set())
    assert "not in the group jupyterhub-users" in sg.account_refusal("outsider", ACCESS, set())
    assert "system account (uid 1)" in sg.account_refusal("daemon", ACCESS, set())
    assert "has no Unix account" in sg.account_refusal("ghost", ACCESS, set())
    assert "Grid Engine manager or operator" in sg.account_refusal("sgemgr", ACCESS, {"sgemgr"})
    # qconf cannot list them (a hub that is a submit host only): that check is skipped, the
    # others still hold
    assert sg.account_refusal("alice", ACCESS, None) == ""
    assert "privileged account" in sg.account_refusal("admin", ACCESS, None)


def test_managers_and_operators_come_from_qconf():
    answers = {"-sm": (0, "root\nsgeadmin", ""), "-so": (1, "", "no operator list defined")}
    cluster = sg.Cluster(SGE, FakeRun(lambda argv: answers[argv[1]]))
    assert asyncio.run(cluster.sge_privileged()) == {"root", "sgeadmin"}
    down = sg.Cluster(SGE, FakeRun(lambda argv: (1, "", "error: commlib error: got select error")))
    assert asyncio.run(down.sge_privileged()) is None


def test_a_job_number_of_someone_else_is_not_followed():
    async def scenario():
        poller = sg.JobPoller(sg.Cluster(SGE, FakeRun(qstat_answer({"5": ("r", "n")}))), interval=5, min_gap=0)
        await poller.ready()
        assert poller.status("5", "u").started  # the fake lists owner "u"
        assert poller.status("5", "alice") is None  # e.g. a job id from a stale or forged state
        poller._task.cancel()

    asyncio.run(scenario())


def test_a_submit_that_timed_out_is_found_by_its_name_and_deleted():
    async def scenario():
        listed = {"jobs": ""}

        def answer(argv):
            if argv[0] == "/usr/bin/qstat":
                return 0, _qstat_doc(listed["jobs"]), ""
            return 0, "", ""  # qdel

        fake = FakeRun(answer)
        poller = sg.JobPoller(sg.Cluster(SGE, fake), interval=0.02, fast_interval=0.01, min_gap=0)
        poller.find_and_delete("alice", "jupyterhub-abc")
        await poller.next_update()
        # the qmaster had queued it after all: it shows up, and is deleted as its owner
        listed["jobs"] = _record("9", "jupyterhub-abc", "alice", "qw") + _record("8", "jupyterhub-abc", "bob")
        await poller.next_update()
        await poller.next_update()
        qdels = [c["argv"] for c in fake.calls if "/usr/bin/qdel" in c["argv"]]
        assert qdels and all(argv == ["sudo", "-n", "-u", "alice", "/usr/bin/qdel", "9"] for argv in qdels)
        listed["jobs"] = _record("8", "jupyterhub-abc", "bob")
        await poller.next_update()
        assert poller.to_delete == {} and poller.lost_submits == {}
        poller._task.cancel()

    asyncio.run(scenario())


def test_a_failed_qdel_is_repeated_until_the_job_is_gone():
    async def scenario():
        state = {"qdel": (1, "", "error: commlib error: got select error (Connection refused)")}

        def answer(argv):
            if argv[0] == "/usr/bin/qstat":
                return 0, _qstat_doc(_record("4", "jupyterhub-x", "alice") if "listed" not in state else ""), ""
            return state["qdel"]

        fake = FakeRun(answer)
        poller = sg.JobPoller(sg.Cluster(SGE, fake), interval=0.02, fast_interval=0.01, min_gap=0)
        poller.delete_later("4", "alice")
        for _ in range(3):
            await poller.next_update()
        assert "4" in poller.to_delete
        state["listed"] = True  # the qmaster is back and the job has gone
        await poller.next_update()
        assert poller.to_delete == {}
        poller._task.cancel()

    asyncio.run(scenario())


# ------------------------------------------------------------------------ what the form shows free

def test_cluster_load_from_a_real_busy_cell():
    """Recorded on the demo cell (2 slots on the host): job 1 runs with 2 slots (smp), jobs 2 and 3
    wait for smp, job 4 waits for all.q."""
    text = recorded("qstat_f_busy")[1]
    instances = sg.parse_queue_instances(text)
    assert instances == [("all.q", 0, 2)]  # the queue says 999 slots, the host's consumable 2
    assert sg.parse_pending(text) == [([], "smp"), ([], "smp"), (["all.q"], "")]
    by_pe = {"smp": sg.parse_queue_instances(recorded("qstat_f_pe_smp")[1])}
    summary = sg.summarize_load(instances, sg.parse_pending(text), by_pe)
    assert summary == {"queue": {"all.q": sg.Load(0, 2, 3)}, "pe": {"smp": sg.Load(0, 2, 2)}}
    assert summary["queue"]["all.q"].text() == "0 of 2 slots free, 3 jobs waiting"


def test_cluster_load_of_an_idle_cell_and_a_disabled_queue():
    idle = sg.parse_queue_instances(recorded("qstat_f_idle")[1])
    assert sg.summarize_load(idle, [], {})["queue"]["all.q"].text() == "2 of 2 slots free"
    disabled = recorded("qstat_f_disabled")[1]
    assert sg.parse_queue_instances(disabled) == [("all.q", 0, 2)]  # state d: nothing starts there
    rc, _, err = recorded("qstat_f_pe_missing")
    assert rc == 1 and "no such parallel environment" in err


def test_the_form_lists_the_load_next_to_each_queue(defaults):
    load = {"queue": {"all.q": sg.Load(3, 8, 1)}, "pe": {"smp": sg.Load(2, 4, 0)}}
    fields = {f["name"]: f for f in sg.form_fields(defaults["spawner"], load=load)}
    assert fields["queue"]["load"]["all.q"].text() == "3 of 8 slots free, 1 job waiting"
    assert fields["pe"]["load"]["smp"].free == 2
    assert fields["ui"]["load"] == {}
    assert sg.form_fields(defaults["spawner"])[0]["load"] == {}  # Grid Engine did not answer


def test_time_left_of_running_servers():
    class Spawner:
        def __init__(self, started, runtime, active=True):
            self.job_started, self.job_runtime, self.active, self.ready = started, runtime, active, active
            self.job_id, self.ip = "42", "node1"
            self.time_left_warning = 900

    class User:
        spawners = {"": Spawner(1000.0, "02:00:00"), "gpu": Spawner(1000.0, "00:20:00"),
                    "old": Spawner(1000.0, "01:00:00", active=False)}

    left = sg.time_left(User(), now=1000.0 + 600)
    assert [(s["name"], s["left"], s["duration"], s["warn"]) for s in left] == [
        ("", 6600, "1 h 50 min", False), ("gpu", 600, "10 min", True)]
    assert left[0]["text"].startswith("Grid Engine stops your server (job 42) at ")
    assert left[1]["text"].startswith("Grid Engine stops server 'gpu' (job 42) at ")
    assert left[1]["text"].endswith("Save your work.")
    assert sg.time_left(None) == []


@pytest.mark.parametrize(("out", "err", "job"), [
    ("12", "", "12"),
    ("12.1-3:1", "", "12"),
    # -sync y with -now yes, ended by sudo's command_timeout before qsub wrote its -terse stdout
    ("", "Your immediate job 12 has been successfully scheduled.\n"
         "Interrupted! Please wait while qsub shuts down.", "12"),
    ("", 'Your job 13 ("jupyter-bob") has been submitted', "13"),
    ("", 'Your job-array 14.1-3:1 ("x") has been submitted', "14"),
    ("", "Unable to run job: job rejected: the job name 12 is invalid", None),
    ("", "sudo: a password is required", None),
    ("", "", None),
])
def test_the_id_of_a_job_qsub_queued_comes_from_its_output(out, err, job):
    assert gridengine.submitted_job(out, err) == job
