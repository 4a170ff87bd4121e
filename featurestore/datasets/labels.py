"""Fixed vocabulary of TAU Urban Audio-Visual Scenes 2021 (DCASE 2021 Task 1B)."""

#: The ten scene classes, in the alphabetical order used by the DCASE baseline and the
#: challenge output files (class index 0-9).
SCENES = (
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
)

#: Cities in development-set file names (lower case, as they appear in file names).
DEVELOPMENT_CITIES = (
    "barcelona",
    "helsinki",
    "lisbon",
    "london",
    "lyon",
    "milan",
    "paris",
    "prague",
    "stockholm",
    "vienna",
)

#: Cities recorded for the dataset that appear only in the evaluation set.
EVALUATION_ONLY_CITIES = ("amsterdam", "madrid")
