"""Synthetic people, places and contact details. Nothing here is a real person's data.

Names mix cultures and scripts on purpose (accents, Māori macrons, CJK, Arabic and Hebrew
(RTL), emoji, apostrophes, decomposed accents); e-mail addresses use the reserved
`example.test` domain; phone numbers are digit strings in Cliniko's style with a reserved-
looking `5550` block; IP addresses come from the TEST-NET ranges.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass

FIRST_NAMES: tuple[str, ...] = (
    "Olivia", "Liam", "Charlotte", "Noah", "Amelia", "Jack", "Isla", "William", "Mia",
    "Oliver", "Ava", "Leo", "Grace", "Lucas", "Chloe", "Henry", "Sophie", "Thomas", "Ruby",
    "James", "Aroha", "Tāne", "Mere", "Wiremu", "Priya", "Arjun", "Mei", "Wei", "Hana",
    "Kenji", "Siobhán", "Seán", "Zoë", "Chloé", "Renée", "José", "François", "Björn",
    "Søren", "Małgorzata", "Łukasz", "Thảo", "Ana", "Luís", "Fatima", "Omar", "Aisha",
    "Yusuf", "Ngaire", "Kalinda", "Ann", "Anne-Marie", "Annabel", "Joanna", "Dylan",
    "Harper", "Matilda", "Archie", "Ivy", "Hamish", "Saoirse", "Ngozi", "Chidi", "Anaïs",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Nguyen", "Williams", "Brown", "Wilson", "Taylor", "Jones", "Singh", "Chen",
    "Wang", "Kelly", "O'Brien", "Murphy", "Ryan", "Walker", "Harris", "Lee", "Martin",
    "Anderson", "Thompson", "White", "Jackson", "Ngata", "Te Rangi", "Müller", "Schröder",
    "García", "Fernández", "Núñez", "Kowalski", "Østergaard", "Dubois", "Lefèvre",
    "Papadopoulos", "Rossi", "MacDonald", "van der Berg", "De Silva", "Al-Farsi", "Johnson",
    "Robinson", "Clarke", "Patel", "Hughes", "Okafor", "Tanaka", "Kim", "Park", "Nakamura",
    "Jansen", "Petrović", "Łęcki", "Hansen", "Ó Súilleabháin", "Dupont-Lajoie", "Wiremu",
)  # fmt: skip

LONG_SURNAME = "-".join(
    (
        "Wolfeschlegelsteinhausenbergerdorff",
        "Welchevoralternwarengewissenhaftschaferswessenschafewarenwohlgepflegeundsorgfaltigkeit",
        "Beschutzenvorangreifendurchihrraubgierigfeinde",
        "Welchevoralternzwolfhunderttausendjahresvorandieerscheinenvanderersteerdemensch",
    )
)
"""A real record-holding surname shape, 200+ characters."""


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    title: str = ""
    preferred: str = ""
    sex: str = ""
    email: str | None = None
    """None: derive one; "": no e-mail."""
    note: str = ""


SPECIAL_PATIENTS: tuple[Person, ...] = (
    # in order of importance: the tiny clinic only has room for the first five
    Person("太郎", "田中", "Mr", note="CJK"),
    Person("محمد", "العلي", "Mr", note="RTL Arabic"),
    Person("Sunny ☀️", "Day 🌈", "", "🙂", note="emoji"),
    Person("Maximilian", LONG_SURNAME, "Mr", note="200+ characters"),
    Person("Zoë", "Ångström-Łukasiewicz", "Dr", "Zo", note="accents"),
    Person("Zoe\u0301", "Nu\u0301n\u0303ez", "", note="decomposed accents (NFD)"),
    Person("", "Nameless", "", email="", note="empty first name, no e-mail"),
    Person("נועה", "כהן", "Ms", note="RTL Hebrew"),
    Person("  Anne-Marie ", " D'Arcy  ", "Mrs", note="stray spaces, apostrophe"),
    Person("Robert'); DROP TABLE patients;--", "Tables", "", "Bobby", note="hostile text"),
    Person("Ngāi", "Te Rangi-Ó Súilleabháin", "", note="macrons and fadas"),
)

SHARED_PRACTITIONER_NAME = ("Sam", "Taylor")
"""Two active practitioners share this full name (and differ by designation)."""

PRACTITIONERS: tuple[Person, ...] = (
    Person("Zoë", "Ñúñez", "Dr", sex="Female"),
    Person("伟", "王", "Dr", sex="Male"),
    Person("Aroha", "Ngata", "Ms", sex="Female"),
    Person("Liam", "O'Brien", "Mr", sex="Male"),
    Person("Fatima", "Al-Farsi", "Dr", sex="Female"),
    Person("Björn", "Østergaard", "Mr", sex="Male"),
    Person("Priya", "Singh", "Ms", sex="Female"),
    Person("Hamish", "MacDonald", "Mr", sex="Male"),
)
DESIGNATIONS: tuple[str, ...] = (
    "Physiotherapist", "Osteopath", "Chiropractor", "Myotherapist", "Exercise Physiologist",
    "Podiatrist", "Psychologist", "Massage Therapist",
)  # fmt: skip

STREETS: tuple[str, ...] = (
    "Example Street", "Test Avenue", "Sandbox Road", "Placeholder Lane", "Demo Parade",
    "Rue de l'Exemple", "Ōtautahi Terrace", "Fictional Crescent",
)  # fmt: skip

CITIES: tuple[tuple[str, str, str, str, str], ...] = (
    # city, state, post code, country, country code
    ("Melbourne", "Victoria", "3000", "Australia", "AU"),
    ("Fitzroy", "Victoria", "3065", "Australia", "AU"),
    ("Perth", "Western Australia", "6000", "Australia", "AU"),
    ("Fremantle", "Western Australia", "6160", "Australia", "AU"),
    ("Auckland", "Auckland", "1010", "New Zealand", "NZ"),
    ("Christchurch", "Canterbury", "8011", "New Zealand", "NZ"),
)


def slug(text: str) -> str:
    """ASCII letters of a name, lower case ("Zoë Ñúñez" -> "zoenunez"); may be empty."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def email_for(first: str, last: str, n: int) -> str:
    local = ".".join(p for p in (slug(first)[:20], slug(last)[:20]) if p) or "person"
    return f"{local}.{n}@example.test"


def random_person(rng: random.Random) -> Person:
    return Person(
        rng.choice(FIRST_NAMES),
        rng.choice(LAST_NAMES),
        rng.choice(("", "Mr", "Ms", "Mrs", "Dr", "Mx")),
    )


def mobile(rng: random.Random, country_code: str = "AU") -> str:
    prefix = "6421" if country_code == "NZ" else "614"
    return f"{prefix}5550{rng.randrange(10_000):04d}"


def landline(rng: random.Random, country_code: str = "AU") -> str:
    prefix = "649" if country_code == "NZ" else "613"
    return f"{prefix}5550{rng.randrange(10_000):04d}"


def street_address(rng: random.Random) -> str:
    return f"{rng.randrange(1, 400)} {rng.choice(STREETS)}"


def ip_address(rng: random.Random) -> str:
    block = rng.choice(("192.0.2", "198.51.100", "203.0.113"))
    return f"{block}.{rng.randrange(1, 255)}"
