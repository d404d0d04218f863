"""The run stage: the built kernel and selftests on AMD and Intel hosts.

Takes a host inventory, a kernel and selftest binaries, and gives a
``RunReport`` per run: each host's outcome against what it should do.
inventory.py reads the hosts and their expectations; harness.py runs hosts in
parallel; qemu.py, ssh.py and local.py are the transports, initramfs.py the
guest's archive; outcome.py judges what a host printed; ktap.py parses and
writes KTAP; results.py writes JSON, JUnit XML and KTAP; build/bzimage.py gives
the version a bzImage carries (ssh and qemu check the booted kernel against
it); lava.py writes LAVA job definitions and lava_results.py reads what a LAVA
job recorded back into a run's report. The KVM selftest suite: suite.py is
the suite as data and the comparison of one test; suiterun.py boots both
kernels' guests (and reruns a series-only failure); suitejudge.py judges and
compares what they printed; suiteresults.py writes it.
"""
