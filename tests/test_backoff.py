"""Workers that die right after they start are respawned with exponential
back-off and a loud log line, never in a tight fork loop."""
import re
import time

from hugdtest import APPS, free_port


def test_workers_dying_at_start_back_off(hugd):
    srv = hugd.spawn(["-w", "2", "-b", f"127.0.0.1:{free_port()}", "dies_at_fork:application"],
                     cwd=APPS)
    time.sleep(4)
    assert srv.proc.poll() is None, "the master must keep running and keep trying"
    log = srv.stderr
    deaths = re.findall(r"worker \d+ \(pid \d+\) exited with 3", log)
    # Without back-off two workers dying at once would fork hundreds of
    # times in 4 s; with it (0.2 s doubling) only a handful.
    assert 2 <= len(deaths) <= 14, f"{len(deaths)} deaths in 4 s:\n{log[-3000:]}"
    assert re.search(r"CRITICAL.*died .* after it started \(\d+ in a row\); next start in", log), \
        log[-3000:]
    delays = [float(x) for x in re.findall(r"next start in ([\d.]+) s", log)]
    assert delays == sorted(delays) and delays[-1] >= 1.0, delays
