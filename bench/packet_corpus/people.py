"""People, sites and site numbers of the generated packets, with their written forms.

Everything here is invented from the generator's own vocabularies; a person is written in
several forms within one packet (``name_form``), a site number in several spellings
(``site_number_form``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

GIVEN = {
    "us": [
        "Maren",
        "Tobias",
        "Celeste",
        "Darnell",
        "Priya",
        "Owen",
        "Lucinda",
        "Ramon",
        "Harriet",
        "Calvin",
        "Noelle",
        "Everett",
        "Yvonne",
        "Grant",
        "Simone",
        "Wesley",
    ],
    "eu": [
        "Anneke",
        "Lorenzo",
        "Margit",
        "Sebastien",
        "Ilse",
        "Mateusz",
        "Ines",
        "Bartosz",
        "Solveig",
        "Henrik",
        "Chiara",
        "Joaquin",
        "Liesbeth",
        "Florian",
        "Agnieszka",
        "Pascale",
    ],
    "uk": [
        "Imogen",
        "Rhys",
        "Fenella",
        "Callum",
        "Bronwen",
        "Alasdair",
        "Tamsin",
        "Declan",
        "Eilidh",
        "Rupert",
    ],
    "apac": [
        "Haruto",
        "Mei",
        "Jisoo",
        "Wei",
        "Aiko",
        "Minjun",
        "Priyanka",
        "Kenji",
        "Siew Ling",
        "Hyun",
        "Ravi",
        "Yuki",
    ],
}
FAMILY = {
    "us": [
        "Whitcombe",
        "Alvarado",
        "Pemberton",
        "Okafor",
        "Lindqvist",
        "Harrow",
        "Castellano",
        "Brightwater",
        "Delacroix",
        "Fairbanks",
        "Mendel",
        "Oyelaran",
        "Thackeray",
        "Vasquez",
        "Kowalczyk",
        "Ashby",
    ],
    "eu": [
        "Vermeulen",
        "Brandstetter",
        "Rossetti",
        "Lindgren",
        "Wojcik",
        "Dufresne",
        "Halvorsen",
        "Castaneda",
        "Kuipers",
        "Marchetti",
        "Zielinski",
        "Lefebvre",
        "Schoenberg",
        "Andersen",
        "Moreau",
        "Nowicki",
    ],
    "uk": [
        "Pennington",
        "MacAllister",
        "Threlfall",
        "Okonjo",
        "Carrick",
        "Wetherby",
        "Gallacher",
        "Ainsworth",
        "Bramley",
        "Treharne",
    ],
    "apac": [
        "Takahashi",
        "Lin",
        "Park",
        "Nakamura",
        "Chen",
        "Kim",
        "Tan",
        "Watanabe",
        "Huang",
        "Choi",
        "Lim",
        "Mori",
    ],
}
MIDDLE = "ABCDEFGHJKLMNPRSTW"
ROLES = [
    ("Sub-Investigator", ["2", "3", "4", "6", "8"]),
    ("Study Coordinator", ["1", "5", "7", "9", "11"]),
    ("Research Nurse", ["3", "5", "7", "10"]),
    ("Pharmacist", ["12", "13"]),
    ("Data Manager", ["9", "11", "14"]),
    ("Laboratory Technician", ["10", "15"]),
]
TASKS = {
    "1": "Informed consent",
    "2": "Eligibility assessment",
    "3": "Physical examination",
    "4": "Adverse event assessment",
    "5": "Vital signs",
    "6": "Medical history",
    "7": "Sample collection",
    "8": "Investigational product prescribing",
    "9": "CRF completion",
    "10": "Sample processing",
    "11": "Query resolution",
    "12": "IP dispensing",
    "13": "IP accountability",
    "14": "Data entry",
    "15": "Sample shipment",
    "16": "Overall study oversight",
}


@dataclass(frozen=True)
class Person:
    """One person: given, optional middle initial, family name and credential."""

    given: str
    family: str
    middle: str = ""
    credential: str = "MD"
    role: str = "Principal Investigator"
    tasks: tuple[str, ...] = ("16",)

    @property
    def plain(self) -> str:
        return f"{self.given} {self.family}"

    @property
    def initials(self) -> str:
        mid = self.middle[:1]
        return f"{self.given[0]}{mid}{self.family[0]}"


def name_form(person: Person, rng: random.Random) -> str:
    """One written form of the person's name (credentials and middle initial vary)."""
    cred = person.credential
    mid = f" {person.middle}." if person.middle else ""
    forms = [
        f"{person.given}{mid} {person.family}, {cred}"
        if cred
        else f"{person.given}{mid} {person.family}",
        f"{person.family}, {person.given}{mid}",
        f"{person.family.upper()}, {person.given}",
        f"{person.given} {person.family}",
    ]
    if cred in ("MD", "MD, PhD", "MBBS"):
        forms += [
            f"Dr. {person.given} {person.family}",
            f"{person.given} {person.family}, {cred.replace('MD', 'M.D.')}",
        ]
    return rng.choice(forms)


def new_person(
    rng: random.Random,
    region: str,
    *,
    used: set[str],
    credential: str = "MD",
    role: str = "Principal Investigator",
    tasks: tuple[str, ...] = ("16",),
) -> Person:
    """A person whose family name is not in ``used`` (so two people never share a surname)."""
    pool = region if region in GIVEN else "us"
    while True:
        family = rng.choice(FAMILY[pool])
        if family not in used:
            used.add(family)
            break
    middle = rng.choice(MIDDLE) if rng.random() < 0.6 else ""
    return Person(rng.choice(GIVEN[pool]), family, middle, credential, role, tasks)


def staff_member(rng: random.Random, region: str, used: set[str]) -> Person:
    role, tasks = rng.choice(ROLES)
    cred = {
        "Sub-Investigator": rng.choice(["MD", "MD, PhD", "DO"]),
        "Research Nurse": "RN",
        "Pharmacist": "PharmD",
    }.get(role, rng.choice(["BSc", "MSc", ""]))
    picked = tuple(sorted(rng.sample(tasks, k=min(len(tasks), rng.randint(2, 4))), key=int))
    return new_person(rng, region, used=used, credential=cred, role=role, tasks=picked)


@dataclass(frozen=True)
class Site:
    """A site: institution, department, street address lines, city and country."""

    institution: str
    department: str
    street: str
    city: str
    postcode: str
    country: str
    phone: str

    def address_lines(self) -> list[str]:
        if self.country == "US":
            return [self.street, f"{self.city} {self.postcode}"]
        return [self.street, f"{self.postcode} {self.city}", COUNTRY_NAMES[self.country]]


COUNTRY_NAMES = {
    "US": "United States",
    "DE": "Germany",
    "PL": "Poland",
    "DK": "Denmark",
    "FR": "France",
    "ES": "Spain",
    "IT": "Italy",
    "NL": "Netherlands",
    "BE": "Belgium",
    "IE": "Ireland",
    "GB": "United Kingdom",
    "AU": "Australia",
    "SG": "Singapore",
    "JP": "Japan",
    "TW": "Taiwan",
    "KR": "Korea",
    "BR": "Brazil",
    "AE": "United Arab Emirates",
    "MX": "Mexico",
}
CITIES = {
    "US": [
        ("Columbus, OH", "43210"),
        ("Madison, WI", "53705"),
        ("Tucson, AZ", "85724"),
        ("Richmond, VA", "23298"),
        ("Portland, OR", "97239"),
        ("Omaha, NE", "68198"),
    ],
    "DE": [("Freiburg", "79106"), ("Leipzig", "04103"), ("Mainz", "55131")],
    "PL": [("Poznan", "60-355"), ("Gdansk", "80-952")],
    "DK": [("Aarhus", "8200"), ("Odense", "5000")],
    "FR": [("Lyon", "69003"), ("Nantes", "44093")],
    "ES": [("Valencia", "46026"), ("Sevilla", "41013")],
    "IT": [("Bologna", "40138"), ("Padova", "35128")],
    "NL": [("Utrecht", "3584 CX"), ("Groningen", "9713 GZ")],
    "BE": [("Leuven", "3000"), ("Gent", "9000")],
    "IE": [("Galway", "H91 YR71"), ("Cork", "T12 DC4A")],
    "GB": [("Leeds", "LS9 7TF"), ("Bristol", "BS2 8HW"), ("Aberdeen", "AB25 2ZN")],
    "AU": [("Parramatta NSW", "2150"), ("Heidelberg VIC", "3084")],
    "SG": [("Singapore", "169608")],
    "JP": [("Sapporo", "060-8648"), ("Fukuoka", "812-8582")],
    "TW": [("Taichung", "40447")],
    "KR": [("Daegu", "41944"), ("Seoul", "03080")],
    "BR": [("Campinas", "13083-888")],
    "AE": [("Abu Dhabi", "51900")],
    "MX": [("Guadalajara", "44280")],
}
INSTITUTION_PATTERNS = [
    "{city} University Hospital",
    "{city} Regional Medical Center",
    "Saint {saint} Hospital {city}",
    "{city} Clinical Research Institute",
    "University Medical Centre {city}",
    "{city} Heart and Neurology Clinic",
]
SAINTS = ["Brigid", "Anselm", "Hedwig", "Columba", "Vincent", "Clare"]
DEPARTMENTS = [
    "Department of Cardiology",
    "Department of Neurology",
    "Clinical Trials Unit",
    "Division of Cardiovascular Medicine",
    "Movement Disorders Program",
    "Early Phase Research Unit",
]
STREETS = [
    "Hospital Road",
    "Research Park Drive",
    "Medical Campus Way",
    "Garden Lane",
    "Linden Avenue",
    "Harbour Street",
    "Castle Hill",
    "North Ring",
]


def new_site(rng: random.Random, country: str) -> Site:
    city, postcode = rng.choice(CITIES[country])
    short = city.split(",")[0].replace(" NSW", "").replace(" VIC", "")
    inst = rng.choice(INSTITUTION_PATTERNS).format(city=short, saint=rng.choice(SAINTS))
    street = f"{rng.randint(2, 1800)} {rng.choice(STREETS)}"
    phone = (
        f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}"
        if country == "US"
        else f"+{rng.randint(30, 89)} {rng.randint(10, 99)} "
        f"{rng.randint(100, 999)} {rng.randint(1000, 9999)}"
    )
    return Site(inst, rng.choice(DEPARTMENTS), street, city, postcode, country, phone)


def site_number_form(number: str, country: str, rng: random.Random) -> str:
    """The site number as one document prints it: ``0142``, ``142`` or ``US-0142``."""
    return rng.choice([number, number.lstrip("0") or "0", f"{country}-{number}"])


def phone_number(rng: random.Random, country: str) -> str:
    if country == "US":
        return f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}"
    groups = (
        rng.randint(30, 89),
        rng.randint(10, 99),
        rng.randint(100, 999),
        rng.randint(1000, 9999),
    )
    return "+{} {} {} {}".format(*groups)
