#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Self-test of vmresults.py on synthetic serial logs: the verdicts the VM
runner gives must follow the kernel log, not only exit codes.  Prints one
line per case and "N passed, N failed"."""

import io
import os
import sys
import tempfile
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vmresults  # noqa: E402

LIST = """# name timeout command
alpha  100  alpha_test
beta   100  beta_test -x
gamma  100  gamma_test
"""

POOL = '1048576kB:4/0,2048kB:512/0'
BOOT = """[    0.000000] Linux version 6.12.117
[    0.500000] Speculative Return Stack Overflow: WARNING: See https://example/srso.html for mitigation options.
[    1.000000] KTAP version 1
[    1.000001] 1..1
[    1.000002]     KTAP version 1
[    1.000003]     # Subtest: list-kernel-test
[    1.000004]     1..2
[    1.000005]     ok 1 list_test_list_init
[    1.000006]     ok 2 list_test_list_add
[    1.000007] # list-kernel-test: pass:2 fail:0 skip:0 total:2
[    1.000008] ok 1 list-kernel-test
"""


def begin(n, name, pool=POOL):
    return 'GMEM-TEST-BEGIN %d %s pool=%s\n' % (n, name, pool)


def end(n, name, rc=0, secs=3, tmo=100, pool=POOL):
    return 'GMEM-TEST-END %d %s rc=%d secs=%d timeout=%d pool=%s\n' % (
        n, name, rc, secs, tmo, pool)


def clean_test(n, name):
    return begin(n, name) + '| TAP version 13\n| ok 1 whatever\n' + end(n, name)


def run_end(leaks=''):
    return ('kmemleak| ' + leaks if leaks else '') + \
        'GMEM-KMEMLEAK-DONE\nGMEM-RUN-END\n'


def full(body, leaks=''):
    return BOOT + 'GMEM-RUN-BEGIN list=x start=1 pool=%s\n' % POOL + body + \
        run_end(leaks)


def verdicts(*logs):
    d = tempfile.mkdtemp()
    lp = os.path.join(d, 'list')
    with open(lp, 'w') as f:
        f.write(LIST)
    paths = []
    for i, text in enumerate(logs):
        p = os.path.join(d, 'boot%d.log' % i)
        with open(p, 'w') as f:
            f.write(text)
        paths.append(p)
    out = io.StringIO()
    with redirect_stdout(out):
        rc = vmresults.report(lp, paths)
    res = {}
    for line in out.getvalue().splitlines():
        w = line.split()
        if w and w[0] in ('PASS', 'FAIL', 'SKIP'):
            res[w[1]] = w[0]
    return rc, res, out.getvalue(), vmresults.next_start(lp, paths)


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


@case
def clean_run_passes_despite_srso_warning():
    rc, res, _, nxt = verdicts(full(clean_test(1, 'alpha') + clean_test(2, 'beta')
                                    + clean_test(3, 'gamma')))
    return (rc == 0 and nxt == 0 and res['alpha'] == res['beta'] ==
            res['gamma'] == res['kunit:list-kernel-test'] == res['kmemleak'] ==
            res['kernel-log'] == 'PASS')


@case
def warn_during_test_fails_that_test():
    body = (clean_test(1, 'alpha') + begin(2, 'beta') +
            '[   5.000000] ------------[ cut here ]------------\n'
            '[   5.000001] WARNING: CPU: 1 PID: 77 at virt/kvm/x.c:12 f+0x1/0x2\n'
            + end(2, 'beta') + clean_test(3, 'gamma'))
    rc, res, out, _ = verdicts(full(body))
    return rc == 1 and res['beta'] == 'FAIL' and res['alpha'] == 'PASS' and \
        res['gamma'] == 'PASS' and 'WARNING: CPU: 1' in out


@case
def splat_interleaved_mid_line_is_seen():
    body = (begin(1, 'alpha') + '| half a li[   5.100000] BUG: KASAN: '
            'slab-use-after-free in kvm_gmem_x+0x1\n' + end(1, 'alpha') +
            clean_test(2, 'beta') + clean_test(3, 'gamma'))
    rc, res, _, _ = verdicts(full(body))
    return rc == 1 and res['alpha'] == 'FAIL'


@case
def lockdep_report_fails():
    body = (begin(1, 'alpha') + '[   6.0] x\n'
            '[   6.000000] WARNING: possible circular locking dependency detected\n'
            + end(1, 'alpha') + clean_test(2, 'beta') + clean_test(3, 'gamma'))
    rc, res, _, _ = verdicts(full(body))
    return rc == 1 and res['alpha'] == 'FAIL'


@case
def panic_fails_running_test_and_next_boot_resumes():
    first = (BOOT + 'GMEM-RUN-BEGIN\n' + clean_test(1, 'alpha') +
             begin(2, 'beta') + '| running\n'
             '[   9.000000] Oops: general protection fault, probably for ...\n'
             '[   9.000001] Kernel panic - not syncing: Fatal exception\n')
    rc, res, out, nxt = verdicts(first)
    if nxt != 3 or res['beta'] != 'FAIL' or 'kernel panic' not in out or \
            res.get('gamma') != 'FAIL' or 'not run' not in out:
        return False
    second = (BOOT + 'GMEM-RUN-BEGIN list=x start=3\n' + clean_test(3, 'gamma')
              + run_end())
    rc, res, out, nxt = verdicts(first, second)
    return rc == 1 and nxt == 0 and res['alpha'] == 'PASS' and \
        res['beta'] == 'FAIL' and res['gamma'] == 'PASS'


@case
def hung_vm_fails_running_test():
    log = BOOT + 'GMEM-RUN-BEGIN\n' + begin(1, 'alpha') + '| stuck\n'
    rc, res, out, nxt = verdicts(log)
    return rc == 1 and res['alpha'] == 'FAIL' and 'hung' in out and nxt == 2


@case
def boot_failure_is_a_failure():
    rc, res, _, nxt = verdicts('[    0.1] Kernel panic - not syncing: VFS\n')
    return rc == 1 and res['boot'] == 'FAIL' and nxt == 0 and \
        res['alpha'] == 'FAIL'


@case
def exit_codes_skip_fail_timeout():
    body = (begin(1, 'alpha') + end(1, 'alpha', rc=4) +
            begin(2, 'beta') + end(2, 'beta', rc=1) +
            begin(3, 'gamma') + end(3, 'gamma', rc=137, secs=100, tmo=100))
    rc, res, out, _ = verdicts(full(body))
    return rc == 1 and res['alpha'] == 'SKIP' and res['beta'] == 'FAIL' and \
        res['gamma'] == 'FAIL' and 'timed out' in out and \
        out.strip().endswith('passed, 2 failed, 1 skipped')


@case
def hugetlb_pool_leak_fails():
    body = (clean_test(1, 'alpha') + begin(2, 'beta') +
            end(2, 'beta', pool='1048576kB:3/0,2048kB:512/0') +
            clean_test(3, 'gamma'))
    rc, res, out, _ = verdicts(full(body))
    return rc == 1 and res['beta'] == 'FAIL' and 'pool not restored' in out


@case
def kmemleak_report_fails():
    body = clean_test(1, 'alpha') + clean_test(2, 'beta') + clean_test(3, 'gamma')
    rc, res, _, _ = verdicts(full(body, leaks='unreferenced object 0xffff (size 64):\n'))
    return rc == 1 and res['kmemleak'] == 'FAIL'


@case
def kunit_failure_and_short_plan_fail():
    boot = BOOT.replace('1..1\n', '1..2\n').replace(
        'ok 1 list-kernel-test', 'not ok 1 list-kernel-test')
    log = boot + 'GMEM-RUN-BEGIN\n' + clean_test(1, 'alpha') + \
        clean_test(2, 'beta') + clean_test(3, 'gamma') + run_end()
    rc, res, _, _ = verdicts(log)
    return rc == 1 and res['kunit:list-kernel-test'] == 'FAIL' and \
        res['kunit'] == 'FAIL'


@case
def report_outside_tests_fails_kernel_log():
    log = BOOT.replace('[    1.000000] KTAP', '[    0.900000] BUG: sleeping '
                       'function called from invalid context\n[    1.000000] KTAP')
    log += 'GMEM-RUN-BEGIN\n' + clean_test(1, 'alpha') + \
        clean_test(2, 'beta') + clean_test(3, 'gamma') + run_end()
    rc, res, _, _ = verdicts(log)
    return rc == 1 and res['kernel-log'] == 'FAIL' and res['alpha'] == 'PASS'


@case
def test_output_cannot_fake_a_report_or_marker():
    body = (begin(1, 'alpha') + '| WARNING: CPU: this is test output\n'
            '| BUG: also output\n' + end(1, 'alpha') + clean_test(2, 'beta') +
            clean_test(3, 'gamma'))
    rc, res, _, _ = verdicts(full(body))
    return rc == 0 and res['alpha'] == 'PASS'


def main():
    passed = failed = 0
    for fn in CASES:
        try:
            ok = fn()
        except Exception as e:  # a crash of the parser is a failure too
            print('      %s: %r' % (fn.__name__, e))
            ok = False
        print('%s %s' % ('PASS ' if ok else 'FAIL ', 'vmresults:' + fn.__name__))
        passed += ok
        failed += not ok
    print('%d passed, %d failed, 0 skipped' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
