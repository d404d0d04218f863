"""Recipients: the base's get_maintainer.pl, roles, and one entry per address."""

from __future__ import annotations

import dataclasses
from collections import Counter
from email.utils import parseaddr

import submit_fixtures as fx
from kseries.base import maintainers
from kseries.base.maintainers import Listed, Role
from kseries.render.manifest import load
from kseries.render.series import RenderedSeries
from kseries.submit import recipients
from kseries.submit.recipients import CC, TO
from submit_fixtures import TEMPLATES

# the fixtures this module uses
git_config, private_cache = fx.git_config, fx.private_cache
base_612, series_612 = fx.base_612, fx.series_612

SAMPLE = """\
Sean Christopherson <seanjc@google.com> (supporter:KERNEL VIRTUAL MACHINE FOR X86 (KVM/x86))
Thomas Gleixner <tglx@linutronix.de> (maintainer:X86 ARCHITECTURE (32-BIT AND 64-BIT))
"H. Peter Anvin" <hpa@zytor.com> (reviewer:X86 ARCHITECTURE (32-BIT AND 64-BIT))
x86@kernel.org (maintainer:X86 ARCHITECTURE (32-BIT AND 64-BIT),open list:X86 MM)
linux-kernel@vger.kernel.org (open list)
"""


def test_parse_roles_and_sections() -> None:
    listed = maintainers.parse(SAMPLE)
    assert [p.address for p in listed] == [
        "seanjc@google.com", "tglx@linutronix.de", "hpa@zytor.com", "x86@kernel.org",
        "linux-kernel@vger.kernel.org"]
    assert listed[0].roles == (Role("supporter", "KERNEL VIRTUAL MACHINE FOR X86 (KVM/x86)"),)
    assert listed[2].name == "H. Peter Anvin"
    assert listed[3].roles == (Role("maintainer", "X86 ARCHITECTURE (32-BIT AND 64-BIT)"),
                               Role("open list", "X86 MM"))
    assert listed[4].roles == (Role("open list", ""),)
    assert str(listed[3].roles[1]) == "open list of X86 MM"


def test_merge_keeps_each_address_once_case_insensitively() -> None:
    manifest = load(TEMPLATES / "series" / "v2")
    manifest = dataclasses.replace(
        manifest, to=("KVM@vger.kernel.org",),
        cc=("Sean Christopherson <SeanJC@google.com>", "kvm@VGER.kernel.org"))
    listed = [
        [Listed("", "kvm@vger.kernel.org", (Role("open list", "KVM"),)),
         Listed("Sean Christopherson", "seanjc@google.com", (Role("supporter", "KVM/x86"),))],
        [Listed("", "kvm@vger.kernel.org", (Role("open list", "KVM"),)),
         Listed("Manali Shukla", "Manali.Shukla@amd.com", (Role("maintainer", "X"),))],
    ]
    who = recipients.merge(manifest, listed)
    keys = Counter(r.address.lower() for r in who.entries)
    assert all(n == 1 for n in keys.values()), keys
    kvm = who.find("kvm@vger.kernel.org")
    assert kvm is not None and kvm.header == TO
    assert kvm.reasons == ["manifest To", "manifest Cc", "open list of KVM (patches 1, 2)"]
    sean = who.find("seanjc@google.com")
    assert sean is not None and sean.header == CC
    assert "supporter of KVM/x86 (patch 1)" in sean.reasons
    # the sender is From, never a recipient of her own series
    assert who.find("manali.shukla@amd.com") is None
    # co-authors are there because of their trailers
    nikunj = who.find("nikunj@amd.com")
    assert nikunj is not None and nikunj.reasons == ["Signed-off-by in patches 3, 5"]


def test_get_maintainer_of_the_612_base(series_612: RenderedSeries) -> None:
    per_patch = maintainers.for_patches(series_612.base, series_612.files[1:])
    assert len(per_patch) == 5

    def addresses(n: int) -> set[str]:
        return {p.address.lower() for p in per_patch[n - 1]}

    # patch 2 only touches arch/x86/include/asm/cpufeatures.h: the x86 maintainers
    x86 = {"x86@kernel.org", "tglx@linutronix.de", "mingo@redhat.com", "bp@alien8.de",
           "dave.hansen@linux.intel.com"}
    assert x86 <= addresses(2)
    roles = {p.address: p.roles for p in per_patch[1]}
    assert Role("maintainer", "X86 ARCHITECTURE (32-BIT AND 64-BIT)") in roles["tglx@linutronix.de"]
    # patch 3 (SVM): the KVM x86 maintainers and list
    kvm = {"kvm@vger.kernel.org", "seanjc@google.com", "pbonzini@redhat.com"}
    assert kvm <= addresses(3)
    kvm_roles = {p.address: p.roles for p in per_patch[2]}
    assert any(r.section.startswith("KERNEL VIRTUAL MACHINE FOR X86")
               for r in kvm_roles["kvm@vger.kernel.org"])
    assert {"linux-kselftest@vger.kernel.org", "kvm@vger.kernel.org"} <= addresses(5)


def test_collect_merges_manifest_and_get_maintainer(series_612: RenderedSeries) -> None:
    who = recipients.collect(series_612.base, series_612.manifest, series_612.files[1:])
    addresses = [parseaddr(r.ident)[1].lower() for r in who.entries]
    assert len(addresses) == len(set(addresses))
    for address in ("x86@kernel.org", "tglx@linutronix.de", "mingo@redhat.com", "bp@alien8.de",
                    "dave.hansen@linux.intel.com", "kvm@vger.kernel.org", "seanjc@google.com",
                    "pbonzini@redhat.com"):
        entry = who.find(address)
        assert entry is not None, address
        assert entry.reasons, address
    assert who.to[:2] == series_612.manifest.to
    sean = who.find("seanjc@google.com")
    assert sean is not None and sean.reasons[0] == "manifest Cc"
    assert any("KERNEL VIRTUAL MACHINE FOR X86" in r for r in sean.reasons)
    x86 = who.find("x86@kernel.org")
    assert x86 is not None and x86.header == CC
    assert x86.reasons == ["maintainer of X86 ARCHITECTURE (32-BIT AND 64-BIT) (patches 1, 2, 3)"]
