"""Hero names for ``meta.generated_name``: a friendly default until a customer picks a name.

Heroes of myth and legend, so every name is free to use. Unlike the reference's list, no
entry is empty (a test pins that).
"""

from __future__ import annotations

import secrets

__all__ = ["HERO_NAMES", "random_hero_name"]

HERO_NAMES: tuple[str, ...] = (
    "Achilles",
    "Aeneas",
    "Ajax",
    "Aladdin",
    "Amaterasu",
    "Anansi",
    "Andromeda",
    "Antigone",
    "Arjuna",
    "Artemis",
    "Arthur",
    "Atalanta",
    "Athena",
    "Beowulf",
    "Bellerophon",
    "Boudica",
    "Brynhildr",
    "Castor",
    "Cuchulainn",
    "Diana",
    "Durga",
    "El Cid",
    "Enkidu",
    "Finn McCool",
    "Freya",
    "Gawain",
    "Gilgamesh",
    "Guinevere",
    "Hanuman",
    "Hector",
    "Hercules",
    "Hiawatha",
    "Hippolyta",
    "Hua Mulan",
    "Ilya Muromets",
    "Isis",
    "Jason",
    "Joan of Arc",
    "Kaguya",
    "Lancelot",
    "Maui",
    "Medea",
    "Merlin",
    "Momotaro",
    "Morgan le Fay",
    "Nezha",
    "Odysseus",
    "Orpheus",
    "Pegasus",
    "Penelope",
    "Percival",
    "Perseus",
    "Pollux",
    "Rama",
    "Robin Hood",
    "Roland",
    "Rostam",
    "Scheherazade",
    "Sigurd",
    "Sinbad",
    "Sita",
    "Sun Wukong",
    "Susanoo",
    "Tristan",
    "Theseus",
    "Thor",
    "Ulysses",
    "Valkyrie",
    "Vasilisa",
    "William Tell",
    "Yamato Takeru",
)


def random_hero_name() -> str:
    return secrets.choice(HERO_NAMES)
