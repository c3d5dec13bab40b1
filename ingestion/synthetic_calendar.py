"""The synthetic default data's calendar: public and school holidays per state, the chain-wide promo weeks, odd
closures and the day-level seasonal effects (see :mod:`ingestion.synthetic`).  Every draw is keyed on the seed and
the calendar year, so a day's calendar never depends on the date range asked for."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ingestion.raw_layout import STATE_HOLIDAYS

HOLIDAY_CODES = np.array(STATE_HOLIDAYS)  # index 0 = no holiday; Kaggle's StateHoliday values


# Promotions (Kaggle's `Promo`): chain-wide, Mon-Fri, on in alternate weeks (the real data's 14-day
# cycle: one promo week, one off week) plus an occasional extra promo week, as in the real data.
PROMO_ANCHOR_MONDAY = pd.Timestamp("2013-01-07")    # a promo week; fixed so the cycle ignores `start`
PROMO_CYCLE_WEEKS = 2
PROMO_EXTRA_WEEK_PROB = 0.08

# --------------------------------------------------------------------------------------------------
# Holidays. States give groups of stores different regional public holidays and school holidays.
STATES = {  # code: (share of stores, regional public holidays ('a'), has Whitsun school break)
    "NW": (0.30, ("corpus_christi", "all_saints"), False),
    "BY": (0.20, ("epiphany", "corpus_christi", "assumption", "all_saints"), True),
    "BW": (0.12, ("epiphany", "corpus_christi", "all_saints"), True),
    "HE": (0.10, ("corpus_christi",), False),
    "SN": (0.13, ("reformation", "repentance"), False),
    "BE": (0.15, (), False),
}
# Offsets from Easter Sunday (days) and fixed dates; codes as Kaggle: a public, b Easter, c Christmas.
NATIONAL_HOLIDAYS = {"new_year": ("a", (1, 1)), "good_friday": ("b", -2), "easter_monday": ("b", 1),
                     "labour_day": ("a", (5, 1)), "ascension": ("a", 39), "whit_monday": ("a", 50),
                     "unity_day": ("a", (10, 3)), "christmas_1": ("c", (12, 25)),
                     "christmas_2": ("c", (12, 26))}
REGIONAL_HOLIDAYS = {"epiphany": (1, 6), "corpus_christi": 60, "assumption": (8, 15),
                     "reformation": (10, 31), "all_saints": (11, 1), "repentance": "repentance"}
PUBLIC_HOLIDAY_OPEN_IF_SUNDAY_OPEN = True            # Sunday stores (stations) also open on 'a' days
PRE_HOLIDAY_LOG_LIFT = (0.14, 0.05)                  # 1 and 2 days before a closure holiday
POST_HOLIDAY_LOG_LIFT = 0.07                         # the day after it
OPEN_HOLIDAY_LOG_LIFT = 0.10                         # stores open on a public holiday do well
RANDOM_CLOSURE_PROB = 0.002                          # odd closed weekdays (inventory, local events)

# School holiday windows, drawn per state and year: (earliest start offset, random extra days, length).
SCHOOL_CHRISTMAS = ((12, 20), 4, 16)
SCHOOL_EASTER = (-9, 3, 15)                          # relative to Easter Sunday
SCHOOL_WHITSUN = (50, 2, 10)
SCHOOL_SUMMER = ((6, 20), 42, 43)                    # start rotates between states and years
SCHOOL_AUTUMN = ((10, 1), 25, 12)
SCHOOL_HOLIDAY_LOG_SD = 0.04                         # per-store effect: tourist areas up, others down
SCHOOL_HOLIDAY_LOG_MEAN = 0.02

# Seasonality: yearly Fourier terms plus the Christmas run-up and pre-Easter shopping.
YEARLY_FOURIER = ((0.03, 0.0), (0.0, 0.025))         # (sin, cos) amplitudes of harmonics 1, 2
YEARLY_AMPLITUDE_LOG_SD = 0.3                        # stores differ in how seasonal they are
XMAS_RUNUP_LOG_PEAK = 0.55                           # reached on Dec 23, ramping up from Dec 1
XMAS_RUNUP_POWER = 2.0
XMAS_BASKET_SHARE = 0.4                              # part of the run-up that is bigger baskets
SPECIAL_DAY_LOG_EFFECT = {(12, 24): -0.35, (12, 31): -0.2, (12, 27): 0.12, (12, 28): 0.12,
                          (12, 29): 0.10, (12, 30): 0.10}
JANUARY_DIP = ((1, 2), (1, 10), -0.06)               # post-Christmas lull
PRE_EASTER_LOG_LIFT = (0.08, 0.22, 0.15)             # week before Good Friday, Maundy Thu, Holy Saturday
MONTH_START_LOG_LIFT = (3, 0.05)                     # first days of the month (pay day)

# Independent random streams per component: store attributes do not move when the calendar changes,
# and the calendar (keyed on seed and year) does not change with n_stores, start or end.
STREAM_CALENDAR, STREAM_STORES, STREAM_NOISE, STREAM_CLOSURES = 1, 2, 3, 4


@dataclass(frozen=True)
class _Calendar:
    """State-level calendar on the padded day axis."""

    holiday: np.ndarray       # (n_states, n_days) int8 index into HOLIDAY_CODES
    school: np.ndarray        # (n_states, n_days) bool
    promo: np.ndarray         # (n_days,) bool, chain-wide


def _easter(year: int) -> pd.Timestamp:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = (h + l_ - 7 * m + 114) % 31 + 1
    return pd.Timestamp(year=year, month=month, day=day)


def _holiday_date(rule, year: int, easter: pd.Timestamp) -> pd.Timestamp:
    if rule == "repentance":  # Wednesday before Nov 23 (Buss- und Bettag)
        nov22 = pd.Timestamp(year=year, month=11, day=22)
        return nov22 - pd.Timedelta(days=(nov22.day_of_week - 2) % 7)
    if isinstance(rule, tuple):
        return pd.Timestamp(year=year, month=rule[0], day=rule[1])
    return easter + pd.Timedelta(days=rule)


def _year_rng(seed: int, stream: int, year: int) -> np.random.Generator:
    """Random stream keyed on the calendar year, so a day's calendar does not depend on the date range
    asked for: the plan of one run is exactly the history of a run with a later `end`."""
    return np.random.default_rng([seed, stream, year])


def build_calendar(dates: pd.DatetimeIndex, seed: int) -> _Calendar:
    """Public/school holidays per state and the chain-wide promo weeks on the given days."""
    n_days = len(dates)
    day0 = dates[0]
    holiday = np.zeros((len(STATES), n_days), dtype=np.int8)
    school = np.zeros((len(STATES), n_days), dtype=bool)

    def span(start: pd.Timestamp, length: int) -> slice:
        lo = (start - day0).days
        return slice(min(max(lo, 0), n_days), min(max(lo + length, 0), n_days))

    # From the year before (Christmas school break) to the year after (promo weeks crossing New Year).
    years = np.arange(dates[0].year - 1, dates[-1].year + 2)
    extra_week = np.zeros((len(years), 54), dtype=bool)  # [year, week of its Monday within the year]
    for y, year in enumerate(years):
        rng = _year_rng(seed, STREAM_CALENDAR, int(year))
        extra_week[y] = rng.random(54) < PROMO_EXTRA_WEEK_PROB
        easter = _easter(int(year))
        for s, (_, regional, whitsun) in enumerate(STATES.values()):
            rules = list(NATIONAL_HOLIDAYS.values()) + [("a", REGIONAL_HOLIDAYS[name]) for name in regional]
            for hcode, rule in rules:
                holiday[s, span(_holiday_date(rule, year, easter), 1)] = np.flatnonzero(HOLIDAY_CODES == hcode)[0]
            # School holidays: each window's start is jittered per state and year (German rotation).
            # Every state draws for every window, so the draws (and the calendar) stay fixed per year.
            windows = [SCHOOL_CHRISTMAS, SCHOOL_EASTER, SCHOOL_SUMMER, SCHOOL_AUTUMN, SCHOOL_WHITSUN]
            shifts = rng.integers(0, np.array([w[1] for w in windows]) + 1)
            for (first, _, length), shift, used in zip(windows, shifts, [True] * 4 + [whitsun]):
                if used:
                    begin = _holiday_date(first, year, easter) + pd.Timedelta(days=int(shift))
                    school[s, span(begin, length)] = True

    # Promo: Mon-Fri of every PROMO_CYCLE_WEEKS-th week counted from a fixed anchor, plus extra weeks.
    week = np.floor_divide((dates - PROMO_ANCHOR_MONDAY).days.to_numpy(), 7)
    monday = PROMO_ANCHOR_MONDAY + pd.to_timedelta(week * 7, unit="D")
    extra = extra_week[monday.year.to_numpy() - years[0], (monday.day_of_year.to_numpy() - 1) // 7]
    promo = ((week % PROMO_CYCLE_WEEKS == 0) | extra) & (dates.day_of_week.to_numpy() < 5)
    return _Calendar(holiday, school, promo)


def random_closures(dates: pd.DatetimeIndex, n_stores: int, seed: int) -> np.ndarray:
    """(store, day) odd closures, drawn per year and store so they too do not depend on the range."""
    years = np.arange(dates[0].year, dates[-1].year + 1)
    draws = np.stack([_year_rng(seed, STREAM_CLOSURES, int(y)).random((n_stores, 366)) for y in years])
    return (draws[dates.year.to_numpy() - years[0], :, dates.day_of_year.to_numpy() - 1] < RANDOM_CLOSURE_PROB).T


def seasonal_effects(dates: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-day log effects shared by all stores: yearly curve, Christmas run-up, special days."""
    month, dom, n_days = dates.month.to_numpy(), dates.day.to_numpy(), len(dates)
    angle = 2 * np.pi * dates.day_of_year.to_numpy() / 365.25
    yearly = sum(a * np.sin((h + 1) * angle) + b * np.cos((h + 1) * angle)
                 for h, (a, b) in enumerate(YEARLY_FOURIER))
    xmas = np.where((month == 12) & (dom <= 23), XMAS_RUNUP_LOG_PEAK * (dom / 23.0) ** XMAS_RUNUP_POWER, 0.0)
    special = np.zeros(n_days)
    for (m, d), eff in SPECIAL_DAY_LOG_EFFECT.items():
        special[(month == m) & (dom == d)] += eff
    (jm, jd0), (_, jd1), jeff = JANUARY_DIP
    special[(month == jm) & (dom >= jd0) & (dom <= jd1)] += jeff
    special[dom <= MONTH_START_LOG_LIFT[0]] += MONTH_START_LOG_LIFT[1]
    week_before, maundy, holy_sat = PRE_EASTER_LOG_LIFT
    for year in range(dates[0].year, dates[-1].year + 1):  # pre-Easter shopping
        gf = (_easter(year) - pd.Timedelta(days=2) - dates[0]).days  # Good Friday
        special[min(max(gf - 7, 0), n_days):min(max(gf - 1, 0), n_days)] += week_before
        for offset, eff in ((-1, maundy), (1, holy_sat)):
            if 0 <= gf + offset < n_days:
                special[gf + offset] += eff
    return yearly, xmas, special
