"""What a generated packet is about: site, people, protocol, dates and the one defect it carries.

A layout reads a :class:`PacketContext` and writes one document; the scenario decides the
context (including ``defect``), so every layout knows whether it must carry the defect.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from bench.packet_corpus import dates
from bench.packet_corpus.people import Person, Site, name_form, phone_number, site_number_form

# Our own wording of the two fictional protocols the shipped protocol matrix knows.
PROTOCOL_TITLES = {
    "CFX-301": [
        "A Phase III, Randomized, Double-Blind, Placebo-Controlled Study of Cardiofluxin in "
        "Adults with Chronic Heart Failure",
        "Cardiofluxin Versus Placebo in Chronic Heart Failure with Reduced Ejection Fraction "
        "(Phase 3)",
    ],
    "NVX-210": [
        "A Phase II Study of Neurovexan in Participants with Early Parkinson's Disease",
        "Neurovexan for Early-Stage Parkinson's Disease: a Randomised Phase 2 Trial",
    ],
}
SPONSORS = ["Meridian Cardio Therapeutics", "Halcyon Biopharma AG", "Northgate Clinical Sciences"]


@dataclass
class Lab:
    """A clinical laboratory listed in Form FDA 1572 section 4 (and certified)."""

    name: str
    street: str
    city: str
    phone: str
    fax: str
    clia: str


@dataclass
class PacketContext:
    """Everything one packet's documents are written from."""

    rng: random.Random
    region: str
    country: str
    site: Site
    site_number: str  # canonical digits, e.g. "0142"
    protocol: str
    version: str
    version_date: date  # the protocol version's own date (printed on the signature page)
    activation: date
    pi: Person
    staff: list[Person]
    irb_name: str
    irb_address: str
    lab: Lab | None
    ind_number: str | None  # the study runs under this US IND at the site
    sponsor: str
    defect: str = "none"
    defect_doc: str = ""  # which document type carries the defect (when it is in one)
    other_person: Person | None = None  # the different "PI" for INVESTIGATOR_NAME_MISMATCH
    no_gcp_for: str = ""  # family name of a delegate without a certificate
    notes: dict[str, str] = field(default_factory=dict)

    # --- helpers layouts share -------------------------------------------------------------
    def name(self, person: Person) -> str:
        """One written form of a person's name (varies from document to document)."""
        return name_form(person, self.rng)

    def site_no(self, doc_type: str) -> str:
        """The site number as this document prints it (the wrong one when it is the defect)."""
        number = self.site_number
        if self.defect == "site_mismatch" and self.defect_doc == doc_type:
            number = f"{int(number) + self.rng.choice([1, 2, 7, 11]):04d}"
        return site_number_form(number, self.country, self.rng)

    def protocol_no(self, doc_type: str) -> str:
        """The protocol number as this document prints it (another study's when the defect)."""
        if self.defect == "protocol_mismatch" and self.defect_doc == doc_type:
            return "NVX-210" if self.protocol == "CFX-301" else "CFX-301"
        return self.protocol

    def title(self) -> str:
        return self.rng.choice(PROTOCOL_TITLES[self.protocol])

    def date_format(self) -> dates.DateFormat:
        return dates.pick(self.rng, self.country)[1]

    def recent(self, lo: int = 20, hi: int = 80) -> date:
        """A date some weeks before the packet is assembled (documents' own dates)."""
        base = date(2026, 4, 20)
        return base - timedelta(days=self.rng.randint(lo, hi))

    def phone(self) -> str:
        return phone_number(self.rng, self.country)

    def people(self) -> list[Person]:
        """The PI and every delegate (the delegation log's rows)."""
        return [self.pi, *self.staff]
