#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Read the serial logs of the test VM and decide, test by test.

    vmresults.py report LIST LOG...   per-test verdicts, then the line
                                      "N passed, N failed, N skipped";
                                      exit status 1 on any failure
    vmresults.py next LIST LOG...     the list index the next boot starts
                                      at, or 0 when the run is complete
    vmresults.py expect EXPECT LIST LOG...
                                      check the verdicts against EXPECT
                                      (lines "<name> <VERDICT> [reason]"),
                                      for runs that break tests on purpose

LOG... are the serial logs of the boots of one run, in order.  A boot that
stops inside a test (kernel panic, hung VM killed by the host's timeout)
fails that test by name; the host then boots again from the next test.

What fails a test: a nonzero exit status other than 4 (kselftest's SKIP), a
kernel report printed while it ran (WARNING, BUG, KASAN, lockdep, Oops,
panic, ...), or a hugetlb pool that is not back where it was.  Kernel
reports outside any test fail the pseudo-test "kernel-log"; kmemleak's scan
at the end of the run is the pseudo-test "kmemleak"; each KUnit suite of
the boot log counts as "kunit:<suite>".
"""

import re
import sys

TIMESTAMP = re.compile(r'\[\s*\d+\.\d{6}\] ?')

# Kernel reports, matched at the start of a kernel message.  A bare
# "WARNING:" inside a message does not count: every boot of this CPU model
# prints "Speculative Return Stack Overflow: WARNING: See ...".
SPLATS = [re.compile(p) for p in (
    r'-+\[ cut here \]-+',
    r'WARNING: ',          # WARN(), lockdep's "WARNING: possible ..."
    r'BUG: ',              # BUG: KASAN:, sleeping in atomic, bad page...
    r'kernel BUG at ',
    r'Oops: ',
    r'general protection fault',
    r'Kernel panic - not syncing',
    r'UBSAN: ',
    r'INFO: trying to register non-static key',
    r'INFO: task .* blocked for more than',
    r'rcu: INFO: .* detected stalls?',
    r'kmemleak: \d+ new suspected memory leaks',
    r'watchdog: BUG: soft lockup',
)]

MARK = re.compile(r'GMEM-(RUN-BEGIN|TEST-BEGIN|TEST-END|KMEMLEAK-DONE|RUN-END)'
                  r'(?: (.*))?$')
KTAP_RESULT = re.compile(r'^(not ok|ok) (\d+) (\S+)(.*)$')
KTAP_PLAN = re.compile(r'^1\.\.(\d+)$')


def read_list(path):
    tests = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            tests.append(line.split()[0])
    return tests


def fields(text):
    out = {}
    for word in text.split():
        if '=' in word:
            k, v = word.split('=', 1)
            out[k] = v
    return out


class Test:
    def __init__(self, name):
        self.name = name
        self.status = None      # 'pass', 'fail', 'skip' or None (not run)
        self.reasons = []
        self.secs = None
        self.output = []
        self.where = None

    def fail(self, reason):
        self.status = 'fail'
        if reason not in self.reasons:
            self.reasons.append(reason)


class Boot:
    """What one serial log says."""

    def __init__(self, path):
        self.path = path
        self.begun = False
        self.ended = False
        self.kmemleak_done = False
        self.kmemleak = []
        self.started = []       # list indexes begun, in order
        self.finished = {}      # index -> END fields
        self.begin = {}         # index -> BEGIN fields
        self.splats = {}        # index or None -> [(line no, text)]
        self.output = {}        # index -> [lines]
        self.panic = None
        self.kunit = []         # (name, status, directive)
        self.kunit_plan = None
        self.parse()

    def parse(self):
        current = None
        ktap_top = False
        with open(self.path, errors='replace') as f:
            lines = f.read().replace('\r', '').split('\n')
        for no, line in enumerate(lines, 1):
            # Kernel messages may land in the middle of a runner line.
            parts = TIMESTAMP.split(line)
            user, kmsgs = parts[0], parts[1:]
            for msg in kmsgs:
                self.kernel_message(current, no, msg)
                if re.match(r'KTAP version', msg):
                    ktap_top = not self.begun and self.kunit_plan is None
                elif ktap_top:
                    self.ktap(msg)
            m = MARK.search(user)
            if not m:
                if user.startswith('| ') and current is not None:
                    self.output.setdefault(current, []).append(user[2:])
                elif user.startswith('kmemleak| '):
                    self.kmemleak.append(user[len('kmemleak| '):])
                continue
            kind, rest = m.group(1), m.group(2) or ''
            if kind == 'RUN-BEGIN':
                self.begun = True
                ktap_top = False
            elif kind == 'TEST-BEGIN':
                idx = int(rest.split()[0])
                current = idx
                self.started.append(idx)
                self.begin[idx] = fields(rest)
                self.begin[idx]['line'] = no
            elif kind == 'TEST-END':
                idx = int(rest.split()[0])
                self.finished[idx] = fields(rest)
                current = None
            elif kind == 'KMEMLEAK-DONE':
                self.kmemleak_done = True
            elif kind == 'RUN-END':
                self.ended = True

    def kernel_message(self, current, no, msg):
        msg = msg.rstrip()
        if msg.startswith('Kernel panic - not syncing') and not self.panic:
            self.panic = msg
        for pat in SPLATS:
            if pat.match(msg):
                self.splats.setdefault(current, []).append((no, msg))
                break

    def ktap(self, msg):
        # Only the top level (no indentation): one result per suite.
        m = KTAP_PLAN.match(msg)
        if m and self.kunit_plan is None:
            self.kunit_plan = int(m.group(1))
            return
        m = KTAP_RESULT.match(msg)
        if m:
            status = 'pass' if m.group(1) == 'ok' else 'fail'
            if '# SKIP' in m.group(4):
                status = 'skip'
            self.kunit.append((m.group(3), status))


def analyse(list_path, logs):
    names = read_list(list_path)
    tests = [Test(n) for n in names]
    boots = [Boot(p) for p in logs]
    outside = Test('kernel-log')
    outside.status = 'pass'
    extra = [outside]

    for boot in boots:
        for no, msg in boot.splats.get(None, []):
            outside.fail('kernel report outside any test, %s:%d: %s'
                         % (boot.path, no, msg))
        for idx in boot.started:
            if not 1 <= idx <= len(tests):
                continue
            t = tests[idx - 1]
            t.status = None
            t.reasons = []
            t.output = boot.output.get(idx, [])
            t.where = '%s:%d' % (boot.path, boot.begin[idx]['line'])
            end = boot.finished.get(idx)
            if end is None:
                if boot.panic:
                    t.fail('kernel panic while it ran: ' + boot.panic)
                else:
                    t.fail('the VM stopped or hung while it ran '
                           '(no end marker; host timeout?)')
            else:
                rc = int(end.get('rc', '255'))
                t.secs = int(end.get('secs', '0'))
                tmo = int(end.get('timeout', '0'))
                if rc == 0:
                    t.status = 'pass'
                elif rc == 4:
                    t.status = 'skip'
                elif rc in (137, 143) and tmo and t.secs >= tmo:
                    t.fail('timed out after %d s' % t.secs)
                else:
                    t.fail('exit status %d' % rc)
                before = boot.begin[idx].get('pool')
                after = end.get('pool')
                if before != after:
                    t.fail('hugetlb pool not restored (free/reserved '
                           'per size): before %s, after %s' % (before, after))
            for no, msg in boot.splats.get(idx, []):
                t.fail('kernel report, %s:%d: %s' % (boot.path, no, msg))

    # KUnit runs at every boot; the first boot that got through it counts.
    for boot in boots:
        if boot.kunit_plan is None:
            continue
        for name, status in boot.kunit:
            k = Test('kunit:' + name)
            k.status = status
            if status == 'fail':
                k.reasons.append('KUnit suite failed, see ' + boot.path)
            extra.append(k)
        if len(boot.kunit) != boot.kunit_plan:
            k = Test('kunit')
            k.fail('KTAP plan 1..%d but %d suite results in %s'
                   % (boot.kunit_plan, len(boot.kunit), boot.path))
            extra.append(k)
        break

    last = boots[-1] if boots else None
    if last and last.kmemleak_done:
        k = Test('kmemleak')
        leaks = [ln for ln in last.kmemleak
                 if ln.startswith('unreferenced object')]
        if leaks:
            k.fail('%d unreferenced object(s): %s' % (len(leaks), leaks[0]))
            k.output = last.kmemleak
        else:
            k.status = 'pass'
        extra.append(k)
    if not boots or not any(b.begun for b in boots):
        k = Test('boot')
        k.fail('the VM never reached the test runner')
        extra.append(k)
    return tests, extra, boots


def next_start(list_path, logs):
    tests, _, boots = analyse(list_path, logs)
    last = boots[-1]
    if last.ended or not last.started:
        return 0
    nxt = max(last.started) + 1
    return nxt if nxt <= len(tests) else 0


def report(list_path, logs):
    tests, extra, _ = analyse(list_path, logs)
    counts = {'pass': 0, 'fail': 0, 'skip': 0}
    for t in tests + extra:
        if t.status is None:
            t.fail('not run')
        counts[t.status] += 1
        secs = ' (%d s)' % t.secs if t.secs is not None else ''
        print('%-5s %s%s' % (t.status.upper(), t.name, secs))
        if t.status == 'fail':
            for r in t.reasons:
                print('      - ' + r)
            if t.where:
                print('      log: ' + t.where)
            for ln in t.output[-15:]:
                print('      | ' + ln)
    print('%d passed, %d failed, %d skipped'
          % (counts['pass'], counts['fail'], counts['skip']))
    return 1 if counts['fail'] else 0


def expect(expect_path, list_path, logs):
    tests, extra, _ = analyse(list_path, logs)
    got = {t.name: t for t in tests + extra}
    passed = failed = 0
    with open(expect_path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            words = line.split(None, 2)
            name, verdict = words[0], words[1].lower()
            reason = words[2] if len(words) > 2 else ''
            t = got.get(name)
            status = (t.status or 'not run') if t else 'missing'
            ok = status == verdict and \
                (not reason or any(reason in r for r in t.reasons))
            print('%s pipeline:%s is %s%s' % ('PASS ' if ok else 'FAIL ', name,
                                              status.upper(),
                                              '' if ok else ' (want %s %s; reasons: %s)'
                                              % (verdict.upper(), reason,
                                                 t.reasons if t else None)))
            passed += ok
            failed += not ok
    print('%d passed, %d failed, 0 skipped' % (passed, failed))
    return 1 if failed else 0


def main(argv):
    if argv and argv[0] == 'expect' and len(argv) >= 4:
        return expect(argv[1], argv[2], argv[3:])
    if len(argv) < 3 or argv[0] not in ('report', 'next'):
        sys.stderr.write(__doc__)
        return 2
    if argv[0] == 'next':
        print(next_start(argv[1], argv[2:]))
        return 0
    return report(argv[1], argv[2:])


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
