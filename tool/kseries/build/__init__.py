"""The build stage: kernels and selftests, built out of tree.

Takes a Base, a commit and a build profile, and gives build directories and
``Artifacts`` (bzImage, static selftests). profiles.py reads the profiles in
templates/profiles/; kbuild.py keeps one build directory per base and profile
and runs make in it; artifacts.py builds the series (or the base) and records
what it built for the run stage; suitetests.py builds every KVM selftest the
base lists, for a suite run; emulator.py builds the emulated host's QEMU;
bzimage.py reads what a bzImage carries (its version, its compressed kernel).
It knows nothing of checks.
"""
