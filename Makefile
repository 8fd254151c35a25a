# SPDX-License-Identifier: GPL-2.0
#
# Entry points of the guest_memfd series.  See README.md.
#
#   make run        main job: build the test kernel and the selftests, boot
#                   the VM, migrate a running guest on 1G guest_memfd
#                   post-copy (ARGS="--kill-source-at=50%" etc., see
#                   scripts/run-demo.sh)
#   make test       the test command: fast checks + kernel + selftests + VM
#                   run of tests/vm-tests.list; last line "N passed, N failed"
#   make check      fast userspace checks only (seconds)
#   make bench      benchmarks; they print tables, they never judge
#   make profile    function profile of the conversion paths, longest
#                   non-preemptible section of 1G splits, instructions
#                   and calls per stage-2 fault (own kernel)
#   make modtest    KVM as modules, unloaded while guest_memfd files close
#   make shell      boot the built test kernel with an interactive shell
#   make series     export patches/ + new files as a numbered format-patch
#                   set with a cover letter, checkpatch --strict on all of it
#   make bisect     build the test kernel at every commit of the series
#   make tree | kernel | selftests | bench-kernel    single stages
#   make patches    write commits made in build/linux back to patches/

SHELL := /bin/bash
S := scripts

.PHONY: help run test check bench profile modtest shell series bisect tree kernel bench-kernel \
	selftests patches deps clean distclean

help:
	@sed -n '5,20s/^#  //p' Makefile

deps:
	$(S)/deps.sh

tree:
	$(S)/tree.sh

kernel: tree
	$(S)/build-kernel.sh test

bench-kernel: tree
	$(S)/build-kernel.sh bench

selftests: kernel
	$(S)/build-selftests.sh test

run: selftests
	$(S)/run-demo.sh $(ARGS)

test:
	$(S)/test.sh

check: tree
	@$(S)/check.sh

bench: tree
	$(MAKE) -s -C build/linux/tools/testing/guest_memfd bench
	$(S)/build-kernel.sh bench
	$(S)/build-selftests.sh bench
	$(S)/run-vm.sh -f bench -l tests/bench.list -a gmem.kmemleak=off
	@sed -n 's/^| //p' build/logs/latest/boot*.log

profile: tree
	$(S)/build-kernel.sh prof
	$(S)/build-selftests.sh prof
	$(S)/run-vm.sh -f prof -l tests/profile.list -a "gmem.kmemleak=off preempt=full"
	@sed -n 's/^| //p' build/logs/latest/boot*.log
	$(S)/run-vm.sh -f prof -i -l tests/profile-icount.list -a "kunit.enable=0 gmem.kmemleak=off maxcpus=1"
	@sed -n 's/^| //p' build/logs/latest/boot*.log

modtest: selftests
	$(S)/build-kernel.sh mod
	$(S)/run-vm.sh -f mod -l tests/mod.list -a kunit.enable=0

shell: selftests
	$(S)/run-vm.sh -f test -s

series: tree
	$(S)/series.sh

bisect: series kernel
	$(S)/bisect-build.sh

patches:
	$(S)/tree.sh export

clean:
	rm -rf build/obj-* build/selftests build/initramfs-* build/series*

distclean:
	rm -rf build
