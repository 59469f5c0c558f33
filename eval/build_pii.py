#!/usr/bin/env python3
"""Build eval/corpus/pii.jsonl: labelled PII spans + look-alike negatives.

Deterministic (fixed seeds, no clock, no network). Needs only the packages pinned in
eval/requirements-pii.txt (faker; phonenumbers/regex are for eval/gen_phone_plan.py):

  python3 -m venv eval/.venv && eval/.venv/bin/pip install -r eval/requirements-pii.txt
  eval/.venv/bin/python eval/build_pii.py            # writes eval/corpus/pii.jsonl, prints counts

Row format (one JSON object per line):

  {"id", "text", "spans": [{"type", "start", "end", "value", ...}], "source",
   "family", "split", "locale"}

`start`/`end` are UTF-8 BYTE offsets into `text`; `value` is the exact labelled substring.
Phone spans also carry `"context": true|false` (false: no phone word anywhere in the line);
card spans carry `"brand"`. `family` is "faker" for labelled lines, "faker-negatives" for the
look-alike lines (`"spans": []`). `split` is "tune" or "test":

  phone      split BY LOCALE (TUNE_PHONE_LOCALES vs TEST_PHONE_LOCALES): the test locales'
             formats are never seen while tuning.
  all others split by a stable hash of the line text (~50/50).
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import ipaddress
import json
import os
import random
import re
import sys
import uuid as _uuid
from pathlib import Path

EVAL_DIR = Path(__file__).resolve().parent
OUT_DEFAULT = EVAL_DIR / "corpus" / "pii.jsonl"

SEED = 20240501
FAKER_VERSION = "40.54.0"

TUNE_PHONE_LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "ja_JP", "en_IN", "ru_RU"]
TEST_PHONE_LOCALES = [
    "en_CA", "en_AU", "it_IT", "pt_BR", "pt_PT", "nl_NL", "nl_BE", "de_AT", "de_CH", "fr_CH",
    "es_MX", "zh_CN", "zh_TW", "pl_PL", "sv_SE", "da_DK", "fi_FI", "cs_CZ", "tr_TR", "ko_KR",
    "id_ID",
]
PHONE_SPANS_PER_LOCALE = 50
NO_CONTEXT_SHARE = 0.25
TARGET = 300  # spans for email / ssn / iban / ipv4 / ipv6
CARD_TARGET = 600
NEG_TARGET = 900


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------

def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_complete(prefix: str) -> str:
    for c in "0123456789":
        if luhn_ok(prefix + c):
            return prefix + c
    raise AssertionError(prefix)


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", s):
        return False
    r = s[4:] + s[:4]
    num = "".join(str(int(c, 36)) for c in r)
    return int(num) % 97 == 1


def ssn_ok(ssn: str) -> bool:
    m = re.fullmatch(r"(\d{3})-(\d{2})-(\d{4})", ssn)
    if not m:
        return False
    a, g, s = m.groups()
    return a not in ("000", "666") and not a.startswith("9") and g != "00" and s != "0000"


def group4(s: str) -> str:
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


def split_of(text: str) -> str:
    h = hashlib.sha256(("split:" + text).encode("utf-8")).digest()
    return "tune" if h[0] % 2 == 0 else "test"


# ---------------------------------------------------------------------------
# cards
# ---------------------------------------------------------------------------

def _rng_prefixes(a: int, b: int) -> list[str]:
    return [str(x) for x in range(a, b + 1)]


# Public IIN ranges (Wikipedia "Payment card number" table and the networks' own notes)
# for brands / lengths faker does not generate. (brand, prefixes, lengths)
IIN_BRANDS: list[tuple[str, list[str], list[int]]] = [
    ("unionpay", ["62"], [16, 17, 18, 19]),
    ("mir", _rng_prefixes(2200, 2204), [16]),
    ("rupay", ["60", "65", "81", "82", "508"], [16]),
    ("maestro", ["50"] + _rng_prefixes(56, 69) + ["6304"], [12, 13, 14, 15, 16, 17, 18, 19]),
    ("diners", ["36", "38", "39"] + _rng_prefixes(300, 305), [14]),
    ("discover", ["6011", "65"] + _rng_prefixes(644, 649), [16, 17, 18, 19]),
    ("jcb", _rng_prefixes(3528, 3589), [16, 17, 18, 19]),
    ("mastercard-2series", _rng_prefixes(2221, 2720), [16]),
    ("verve", _rng_prefixes(506099, 506198) + _rng_prefixes(650002, 650027), [16, 19]),
    ("troy", ["9792"], [16]),
    ("dankort", ["5019"], [16]),
    ("uatp", ["1"], [15]),
    ("interpayment", ["636"], [16, 17, 18, 19]),
    (
        "elo",
        ["401178", "401179", "431274", "438935", "451416", "457393", "457631", "457632", "504175", "627780", "636297", "636368"]
        + _rng_prefixes(506699, 506778)
        + _rng_prefixes(509000, 509999)
        + _rng_prefixes(650031, 650033)
        + _rng_prefixes(650035, 650051)
        + _rng_prefixes(650405, 650439)
        + _rng_prefixes(650485, 650538)
        + _rng_prefixes(651652, 651679),
        [16],
    ),
    ("hipercard", ["606282", "637095", "637568", "637599", "637609", "637612"], [16]),
    ("hipercard-3841", ["384100", "384140", "384160"], [16, 19]),
    ("lankapay", ["357111"], [16]),
    ("uzcard", ["8600"], [16]),
    ("humo", ["9860"], [16]),
    ("borica", ["2205"], [16]),
    ("china-t-union", ["31"], [19]),
    ("visa-electron", ["4026", "417500", "4508", "4844", "4913", "4917"], [16]),
]

# faker credit card providers (locale -> types); "visa"/"jcb" in en_US are aliases.
FAKER_CARD_LOCALES = ["en_US", "ru_RU", "zh_CN", "pt_PT", "uk_UA", "fa_IR"]


def card_groups(n: int, brand: str) -> list[int]:
    if n == 15:
        return [4, 5, 6] if brand.startswith("uatp") else [4, 6, 5]
    if n == 14:
        return [4, 6, 4]
    if n == 13:
        return [4, 4, 5]
    if n == 19 and brand in ("unionpay", "china-t-union") :
        return [6, 13]
    full = [4] * (n // 4)
    if n % 4:
        full.append(n % 4)
    return full


def render_card(num: str, brand: str, style: int) -> str:
    if style == 0:
        return num
    sep = " " if style == 1 else "-"
    out, i = [], 0
    for g in card_groups(len(num), brand):
        out.append(num[i : i + g])
        i += g
    assert i == len(num)
    return sep.join(out)


def iin_card(rng: random.Random, prefixes: list[str], lengths: list[int]) -> str:
    p = rng.choice(prefixes)
    n = rng.choice(lengths)
    body = p + "".join(rng.choice("0123456789") for _ in range(n - 1 - len(p)))
    return luhn_complete(body)


def is_valid_card(num: str) -> bool:
    """True when the digit string is a Luhn-valid number of a known brand prefix and length."""
    if not luhn_ok(num):
        return False
    n = len(num)
    for _, prefixes, lengths in IIN_BRANDS:
        if n in lengths and any(num.startswith(p) for p in prefixes):
            return True
    base = [("4", (13, 16, 19)), ("34", (15,)), ("37", (15,)), ("51", (16,)), ("52", (16,)), ("53", (16,)),
            ("54", (16,)), ("55", (16,)), ("2131", (15,)), ("1800", (15,)), ("35", (16,)), ("9", (16,)),
            ("0604", (12,)), ("5018", (12,)), ("5020", (12,)), ("5038", (12,)), ("6759", (12,)),
            ("6761", (12,)), ("6762", (12, 16)), ("6763", (12,)), ("6390", (12,))]
    return any(num.startswith(p) and n in ls for p, ls in base) or (n == 16 and num[0] in "56")


# ---------------------------------------------------------------------------
# templates
# ---------------------------------------------------------------------------

PII_TEMPLATES = {
    "email": [
        "Please send the invoice to {v} by Friday.",
        "My email is {v}, reach out anytime.",
        "Contact: {v}",
        "Can you forward the report to {v} and cc {v2}?",
        "I signed up with {v} but never got the confirmation mail.",
        "Reply-To: {v}\nSubject: Quarterly numbers",
        "Bitte schicken Sie die Unterlagen an {v} — danke!",
        "Hi, this is Zoë from accounting; my address is {v}.",
        "{\"user\": \"jdoe\", \"email\": \"{v}\", \"active\": true}",
        "Write a polite reminder email to {v} about the overdue library book.",
    ],
    "card": [
        "My card number is {v}, expiry 09/27.",
        "Charge it to {v} please.",
        "Card: {v} CVV on the back.",
        "I used {v} for the hotel and {v2} for the flight.",
        "Why was my payment with {v} declined?",
        "payment_method={v}&amount=49.99",
        "Kreditkarte: {v} — bitte belasten.",
        "Here's the card I want on file: {v}",
        "Numéro de carte : {v}, expire fin 2027.",
        "Mi tarjeta es la {v}.",
        "カード番号：{v}",
        "银行卡号：{v}",
        "Номер карты: {v}",
        "Cartão de crédito {v} — validade 03/28.",
        "{v} exp 11/28",
        "The refund should go back to {v}.",
    ],
    "ssn": [
        "My SSN is {v}.",
        "Social Security Number: {v}",
        "Fill in the W-4 with SSN {v} for the new hire.",
        "The applicant's SSN ({v}) was entered twice by mistake.",
        "ssn: {v}\nname: redacted",
        "Can you check if {v} is a valid format for a social security number?",
        "Employee A: {v}; employee B: {v2}.",
    ],
    "iban": [
        "Please wire the money to IBAN {v}.",
        "My IBAN is {v}, BIC below.",
        "Überweisung an {v}, Verwendungszweck: Miete März.",
        "Pay the supplier at {v} and refund the customer at {v2}.",
        "Bank details — IBAN: {v}",
        "Can you check whether {v} is a valid IBAN?",
        "Virement vers le compte {v} s'il vous plaît.",
    ],
    "ipv4": [
        "The server at {v} is not responding to ping.",
        "Block traffic from {v} in the firewall.",
        "ssh admin@{v} -p 2222",
        "Our VPN gateway is {v} and the DNS is {v2}.",
        "Failed login attempt from {v} at 03:12.",
        "Set the upstream to http://{v}:8080/api",
        "Why does my router show {v} as the WAN address?",
        "upstream backend {{ server {v}:8443; server {v2}:8443; }}",
        "nc -vz {v} 5432",
    ],
    "ipv6": [
        "The host resolves to {v} over IPv6.",
        "Add {v} to the allow-list.",
        "Connection refused from [{v}]:443",
        "Our primary address is {v} and the secondary is {v2}.",
        "curl -6 http://[{v}]:8080/health",
        "Why is {v} showing up in the nginx access log?",
    ],
}

PHONE_CTX_EN = [
    "Call me at {v} after 6pm.",
    "My phone number is {v}.",
    "Phone: {v}",
    "You can reach me on {v} most evenings.",
    "Please text {v} when the delivery arrives.",
    "The customer left a voicemail from {v} asking about the refund.",
    "You can reach the front desk on {v} or the manager on {v2}.",
    "If the system goes down, page the on-call engineer at {v} 📟.",
    "Update my contact info: phone {v}, preferred time mornings.",
    "Mobile: {v}",
    "Can you format the telephone number {v} for our CRM?",
]

PHONE_CTX_LANG = {
    "de": ["Rufen Sie mich unter {v} an.", "Tel.: {v}", "Meine Handynummer ist {v}.", "Telefon: {v} (Mo–Fr 9–17 Uhr)"],
    "fr": ["Numéro de téléphone : {v}", "Appelez-moi au {v}.", "Tél. : {v}", "Mon portable : {v}"],
    "es": ["Llámame al {v}.", "Teléfono: {v}", "Mi número de móvil es {v}.", "Tel. {v} (horario de oficina)"],
    "ja": ["電話番号：{v}", "お電話は{v}までお願いします。", "TEL {v}", "携帯：{v}"],
    "ru": ["Позвоните мне по номеру {v}.", "Тел.: {v}", "Мой мобильный: {v}", "Телефон для связи {v}"],
    "it": ["Chiamami al {v}.", "Tel.: {v}", "Il mio numero di cellulare è {v}.", "Telefono: {v}"],
    "pt": ["Ligue para {v}.", "Telefone: {v}", "O meu telemóvel é {v}.", "Meu celular é {v}."],
    "nl": ["Bel me op {v}.", "Telefoon: {v}", "Mijn mobiele nummer is {v}.", "Tel. {v}"],
    "zh_CN": ["电话：{v}", "请拨打{v}联系我。", "我的手机号是{v}。", "联系电话 {v}"],
    "zh_TW": ["電話：{v}", "請撥打{v}與我聯絡。", "我的手機號碼是{v}。", "聯絡電話 {v}"],
    "pl": ["Zadzwoń do mnie pod numer {v}.", "Tel.: {v}", "Mój numer telefonu to {v}.", "Telefon kontaktowy: {v}"],
    "sv": ["Ring mig på {v}.", "Tel: {v}", "Mitt mobilnummer är {v}.", "Telefon: {v}"],
    "da": ["Ring til mig på {v}.", "Tlf.: {v}", "Mit mobilnummer er {v}.", "Telefon: {v}"],
    "fi": ["Soita minulle numeroon {v}.", "Puh. {v}", "Puhelinnumeroni on {v}.", "Puhelin: {v}"],
    "cs": ["Zavolejte mi na {v}.", "Tel.: {v}", "Moje telefonní číslo je {v}.", "Telefon: {v}"],
    "tr": ["Beni {v} numarasından arayın.", "Tel: {v}", "Cep telefonum: {v}", "Telefon: {v}"],
    "ko": ["전화번호: {v}", "{v}로 전화 주세요.", "제 휴대폰 번호는 {v}입니다.", "연락처 {v}"],
    "id": ["Hubungi saya di {v}.", "Telp: {v}", "Nomor HP saya {v}.", "Telepon: {v}"],
    "en": [],
}

# No phone word anywhere: office/address blocks, bare numbers with a note.
PHONE_NOCTX_EN = [
    "Our {city} office: {v}.",
    "{v} (after 6pm)",
    "Ask for {name} — {v}.",
    "{name}, {v}",
    "{name}\n{street}\n{city}\n{v}",
    "{v} — weekdays 9 to 5",
    "Front desk {v}",
    "{name} ({city}): {v}",
    "If nobody answers try {v} instead.",
]
PHONE_NOCTX_LANG = {
    "de": ["Büro {city}: {v}", "{v} (ab 18 Uhr)"],
    "fr": ["Bureau de {city} : {v}", "{v} (après 18 h)"],
    "es": ["Oficina de {city}: {v}", "{v} (de 9 a 14 h)"],
    "ja": ["{city}営業所 {v}", "{v}（平日のみ）"],
    "ru": ["Офис в {city}: {v}", "{v} (после 18:00)"],
    "it": ["Ufficio di {city}: {v}", "{v} (dopo le 18)"],
    "pt": ["Escritório de {city}: {v}", "{v} (após as 18h)"],
    "nl": ["Kantoor {city}: {v}", "{v} (na 18.00 uur)"],
    "zh_CN": ["{city}办事处：{v}", "{v}（工作日）"],
    "zh_TW": ["{city}辦事處：{v}", "{v}（週一至週五）"],
    "pl": ["Biuro {city}: {v}", "{v} (po 18:00)"],
    "sv": ["Kontoret i {city}: {v}", "{v} (efter kl. 18)"],
    "da": ["Kontoret i {city}: {v}", "{v} (efter kl. 18)"],
    "fi": ["{city}n toimisto: {v}", "{v} (klo 18 jälkeen)"],
    "cs": ["Kancelář {city}: {v}", "{v} (po 18. hodině)"],
    "tr": ["{city} ofisi: {v}", "{v} (18.00'den sonra)"],
    "ko": ["{city} 사무소 {v}", "{v} (평일만)"],
    "id": ["Kantor {city}: {v}", "{v} (setelah jam 18)"],
    "en": [],
}

# Words that make a line "phone context"; asserted absent from no-context lines.
PHONE_WORDS = re.compile(
    r"(?i)\b(call|phone|tel|telephone|mobile|cell|text|voicemail|page|reach|contact|dial|ring|fax|number|whatsapp|bel|cep|puh)\b"
    r"|tél|telefon|handy|móvil|llám|teléf|電話|携帯|телеф|позвон|мобил|тел\.|chiam|cellulare|ligue|telemóvel|celular|"
    r"电话|手机|電話|手機|联系|聯絡|zadzwoń|numer|mobil|tlf|soita|zavolej|číslo|arayın|전화|휴대폰|연락|hubungi|telp|nomor"
)


def lang_of(locale: str) -> str:
    if locale in ("zh_CN", "zh_TW"):
        return locale
    return locale.split("_")[0]


# ---------------------------------------------------------------------------
# building lines with byte offsets
# ---------------------------------------------------------------------------

def assemble(tpl: str, vals: list[str], typ: str, fmt: dict | None = None, span_extra: list[dict] | None = None):
    if fmt:
        for k, v in fmt.items():
            tpl = tpl.replace("{" + k + "}", v)
    tpl = tpl.replace("{{", "\x00L").replace("}}", "\x00R")
    parts = re.split(r"(\{v2?\})", tpl)
    buf = b""
    spans = []
    for part in parts:
        if part in ("{v}", "{v2}"):
            i = 0 if part == "{v}" else 1
            val = vals[i]
            start = len(buf)
            buf += val.encode("utf-8")
            sp = {"type": typ, "start": start, "end": len(buf), "value": val}
            if span_extra:
                sp.update(span_extra[i])
            spans.append(sp)
        else:
            buf += part.replace("\x00L", "{").replace("\x00R", "}").encode("utf-8")
    text = buf.decode("utf-8")
    for sp in spans:
        assert buf[sp["start"] : sp["end"]].decode("utf-8") == sp["value"]
    return text, spans


def row(rid: str, text: str, spans: list[dict], source: str, family: str, split: str, locale) -> dict:
    return {"id": rid, "text": text, "spans": spans, "source": source, "family": family, "split": split, "locale": locale}


# ---------------------------------------------------------------------------
# positives
# ---------------------------------------------------------------------------

def make_fakers(locales: list[str], offset: int):
    from faker import Faker

    out = {}
    for i, loc in enumerate(locales):
        f = Faker(loc)
        f.seed_instance(SEED + offset + i)
        out[loc] = f
    return out


def build_phones(rng: random.Random) -> list[dict]:
    rows = []
    locales = TUNE_PHONE_LOCALES + TEST_PHONE_LOCALES
    fakers = make_fakers(locales, 1000)
    for loc in locales:
        f = fakers[loc]
        split = "tune" if loc in TUNE_PHONE_LOCALES else "test"
        lang = lang_of(loc)
        n_spans = 0
        k = 0
        while n_spans < PHONE_SPANS_PER_LOCALE:
            k += 1
            ctx = rng.random() >= NO_CONTEXT_SHARE
            if ctx:
                local = PHONE_CTX_LANG.get(lang, [])
                pool = local if (local and rng.random() < 0.6) else PHONE_CTX_EN
            else:
                local = PHONE_NOCTX_LANG.get(lang, [])
                pool = local if (local and rng.random() < 0.5) else PHONE_NOCTX_EN
            tpl = rng.choice(pool)
            if "{v2}" in tpl and n_spans + 2 > PHONE_SPANS_PER_LOCALE:
                continue
            vals = [f.phone_number()]
            if "{v2}" in tpl:
                vals.append(f.phone_number())
            fmt = {"city": f.city(), "name": f.name(), "street": f.street_address()}
            text, spans = assemble(tpl, vals, "phone", fmt, [{"context": ctx}] * len(vals))
            if not ctx:
                rest = text
                for sp in spans:
                    rest = rest.replace(sp["value"], " ")
                assert not PHONE_WORDS.search(rest), text
            rows.append(row(f"pii-phone-{loc}-{k:03d}", text, spans, f"faker:{loc}:phone_number", "faker", split, loc))
            n_spans += len(spans)
    return rows


def build_cards(rng: random.Random) -> list[dict]:
    fakers = make_fakers(FAKER_CARD_LOCALES, 2000)
    entries = []  # (brand, locale, source, fn)
    for loc in FAKER_CARD_LOCALES:
        f = fakers[loc]
        prov = next(p for p in f.providers if "credit_card" in type(p).__module__)
        types = [t for t in prov.credit_card_types if not (loc == "en_US" and t in ("visa", "jcb"))]
        if loc == "fa_IR":  # 29 Iranian Shetab bank types: one entry, random bank each time
            entries.append(("shetab", loc, "faker:fa_IR:credit_card_number",
                            lambda f=f, ts=types: (lambda t: (t, f.credit_card_number(card_type=t)))(rng.choice(ts))))
            continue
        for t in types:
            entries.append((t, loc, f"faker:{loc}:credit_card_number({t})",
                            lambda f=f, t=t: (t, f.credit_card_number(card_type=t))))
    for brand, prefixes, lengths in IIN_BRANDS:
        entries.append((brand, None, f"iin-luhn:{brand}", lambda b=brand, p=prefixes, l=lengths: (b, iin_card(rng, p, l))))

    tpls = PII_TEMPLATES["card"]
    rows = []
    n_spans = 0
    k = 0
    while n_spans < CARD_TARGET:
        tpl = tpls[k % len(tpls)]
        vals, extra, srcs, locs = [], [], [], []
        for _ in range(2 if "{v2}" in tpl else 1):
            brand, loc, src, fn = entries[(n_spans + len(vals)) % len(entries)]
            sub, num = fn()
            assert num.isdigit() and luhn_ok(num), (src, num)
            name = brand if brand != "shetab" else f"shetab:{sub}"
            vals.append(render_card(num, brand, rng.randrange(3)))
            extra.append({"brand": name})
            srcs.append(src)
            locs.append(loc)
        k += 1
        text, spans = assemble(tpl, vals, "card", None, extra)
        rows.append(row(f"pii-card-{k:04d}", text, spans, srcs[0], "faker", split_of(text), locs[0]))
        n_spans += len(spans)
    return rows


def build_simple(rng: random.Random) -> list[dict]:
    locs = ["en_US", "en_GB", "de_DE", "fr_FR", "en_IN", "nl_NL", "es_ES", "it_IT"]
    fakers = make_fakers(locs, 0)
    fus = fakers["en_US"]

    def gen_email():
        loc = rng.choice(locs)
        f = fakers[loc]
        return loc, rng.choice([f.email, f.free_email, f.company_email, f.safe_email])()

    def gen_ssn():
        while True:
            s = fus.ssn()
            if ssn_ok(s):
                return "en_US", s

    iban_locs = ["en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT"]

    def gen_iban():
        while True:
            loc = rng.choice(iban_locs)
            v = fakers[loc].iban()
            if iban_ok(v):
                return loc, (v if rng.random() < 0.5 else group4(v))

    def gen_ipv4():
        return "en_US", rng.choice([fus.ipv4_public, fus.ipv4_private, fus.ipv4])()

    def gen_ipv6():
        v = fus.ipv6()
        r = rng.random()
        if r < 0.35:
            g = ipaddress.IPv6Address(v).exploded.split(":")
            i = rng.randrange(1, 5)
            n = rng.randrange(2, 5)
            g[i : i + n] = ["0000"] * len(g[i : i + n])
            v = ipaddress.IPv6Address(":".join(g)).compressed
        elif r < 0.6:
            v = ipaddress.IPv6Address(v).compressed
        elif r < 0.7:
            v = ipaddress.IPv6Address(v).exploded
        return "en_US", v

    gens = {"email": gen_email, "ssn": gen_ssn, "iban": gen_iban, "ipv4": gen_ipv4, "ipv6": gen_ipv6}
    rows = []
    for typ, gen in gens.items():
        tpls = PII_TEMPLATES[typ]
        n_spans = 0
        k = 0
        while n_spans < TARGET:
            tpl = tpls[k % len(tpls)]
            k += 1
            got = [gen()]
            if "{v2}" in tpl:
                got.append(gen())
            text, spans = assemble(tpl, [v for _, v in got], typ)
            rows.append(row(f"pii-{typ}-{k:04d}", text, spans, "faker", "faker", split_of(text), got[0][0]))
            n_spans += len(spans)
    return rows


# ---------------------------------------------------------------------------
# negatives
# ---------------------------------------------------------------------------

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
QUAD_RE = re.compile(r"(?<![\d.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
SSN_RE = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){10,30}\b")
CARDISH_RE = re.compile(r"(?<!\d)\d(?:[ -]?\d){11,18}(?!\d)")


def negative_is_clean(t: str) -> bool:
    """A look-alike line must contain no genuinely valid PII of the labelled types."""
    if EMAIL_RE.search(t):
        return False
    for m in QUAD_RE.finditer(t):
        if all(int(x) <= 255 for x in m.groups()):
            return False
    if any(ssn_ok(m.group()) for m in SSN_RE.finditer(t)):
        return False
    if any(iban_ok(m.group()) for m in IBAN_RE.finditer(t)):
        return False
    for m in CARDISH_RE.finditer(t):
        d = re.sub(r"\D", "", m.group())
        # every sub-run of 12..19 digits between separators counts
        for i in range(len(d)):
            for j in range(i + 12, min(len(d), i + 19) + 1):
                if is_valid_card(d[i:j]):
                    return False
    for w in re.findall(r"[0-9A-Fa-f:]{6,}", t):
        if w.count(":") >= 2:
            try:
                ipaddress.IPv6Address(w)
            except ValueError:
                continue
            return False
    return True


def build_negatives(rng: random.Random) -> list[dict]:
    from faker import Faker

    fk = {loc: Faker(loc) for loc in ["en_GB", "de_DE", "fr_FR", "nl_NL"]}
    for i, f in enumerate(fk.values()):
        f.seed_instance(SEED + 100 + i)

    D = "0123456789"

    def digits(n: int, first_nonzero: bool = True) -> str:
        s = "".join(rng.choice(D) for _ in range(n))
        if first_nonzero and s[0] == "0":
            s = rng.choice("123456789") + s[1:]
        return s

    def luhn_bad(prefix: str, n: int) -> str:
        body = prefix + "".join(rng.choice(D) for _ in range(n - 1 - len(prefix)))
        good = luhn_complete(body)
        return body + str((int(good[-1]) + rng.randrange(1, 10)) % 10)

    def bad_luhn16() -> str:
        while True:
            d = digits(16)
            if not luhn_ok(d):
                return d

    def card_like_bad() -> str:
        return luhn_bad(rng.choice(["4", "51", "55", "6011", "4111"]), 16)

    def brand_bad() -> str:
        brand, prefixes, lengths = rng.choice(IIN_BRANDS)
        num = luhn_bad(rng.choice(prefixes), rng.choice(lengths))
        return render_card(num, brand, rng.randrange(3))

    def hexs(n):
        return "".join(rng.choice("0123456789abcdef") for _ in range(n))

    def uuid():
        return str(_uuid.UUID(int=rng.getrandbits(128), version=4))

    def bad_ssn():
        a = rng.choice(["000", "666", str(rng.randrange(900, 1000)), f"{rng.randrange(1, 900):03d}"])
        g = f"{rng.randrange(1, 100):02d}"
        s = f"{rng.randrange(1, 10000):04d}"
        if a not in ("000", "666") and not a.startswith("9"):
            if rng.random() < 0.5:
                g = "00"
            else:
                s = "0000"
        return f"{a}-{g}-{s}"

    def bad_iban():
        while True:
            v = rng.choice(list(fk.values())).iban()
            new = (int(v[2:4]) + rng.randrange(1, 97)) % 100
            w = v[:2] + f"{new:02d}" + v[4:]
            if not iban_ok(w):
                return w if rng.random() < 0.5 else group4(w)

    def ymd():
        return rng.randrange(1990, 2030), rng.randrange(1, 13), rng.randrange(1, 29)

    def date():
        y, m, d = ymd()
        return rng.choice([
            f"{y}-{m:02d}-{d:02d}", f"{m:02d}/{d:02d}/{y}", f"{d:02d}.{m:02d}.{y}", f"{y}年{m}月{d}日",
            f"{d:02d}/{m:02d}/{y}", f"{y}/{m:02d}/{d:02d}", f"{d:02d}-{m:02d}-{y}", f"{y}{m:02d}{d:02d}",
            f"{d}.{m}.{y % 100:02d}", f"{y}. {m}. {d}", f"{y}년 {m}월 {d}일", f"{d} {['Jan','Feb','Mar','Apr','May','Jun','Jul','Aug','Sep','Oct','Nov','Dec'][m-1]} {y}",
        ])

    def time_():
        h, mi, s = rng.randrange(24), rng.randrange(60), rng.randrange(60)
        return rng.choice([f"{h:02d}:{mi:02d}", f"{h:02d}:{mi:02d}:{s:02d}", f"{(h % 12) or 12}:{mi:02d}:{s:02d} {'AM' if h < 12 else 'PM'}",
                           f"{h}h{mi:02d}", f"{h:02d}.{mi:02d} Uhr", f"{h:02d}:{mi:02d}:{s:02d}.{rng.randrange(1000):03d}"])

    def iso_ts():
        y, m, d = ymd()
        h, mi, s = rng.randrange(24), rng.randrange(60), rng.randrange(60)
        return rng.choice([
            f"{y}-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z",
            f"{y}-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{rng.randrange(1000):03d}+{rng.randrange(0, 12):02d}:00",
            f"{y}-{m:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d},{rng.randrange(1000):03d}",
            f"{y}{m:02d}{d:02d}T{h:02d}{mi:02d}{s:02d}Z",
            f"{y}{m:02d}{d:02d}{h:02d}{mi:02d}{s:02d}",
        ])

    def duration():
        return rng.choice([f"PT{rng.randrange(1, 24)}H{rng.randrange(60)}M", f"{rng.randrange(100):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}",
                           f"{rng.randrange(1, 12)}h {rng.randrange(60)}m {rng.randrange(60)}s", f"{rng.randrange(1, 99999)} ms"])

    def version():
        return rng.choice([
            f"v{rng.randrange(0, 20)}.{rng.randrange(0, 30)}.{rng.randrange(0, 50)}",
            f"version {rng.randrange(1, 12)}.{rng.randrange(0, 30)}.{rng.randrange(0, 20)}",
            f"{rng.randrange(1, 5)}.{rng.randrange(0, 99)}.{rng.randrange(0, 99)}-rc{rng.randrange(1, 5)}",
            f"{rng.randrange(1, 5)}.0.0-beta.{rng.randrange(1, 9)}+exp.sha.{hexs(7)}",
        ])

    def price():
        return rng.choice([f"${rng.randrange(1, 99999):,}.{rng.randrange(100):02d}", f"€{rng.randrange(1, 9999)},{rng.randrange(100):02d}",
                           f"£{rng.randrange(1, 999)}.{rng.randrange(100):02d}"])

    def indian(n: int) -> str:
        t = str(n)
        head, tail = t[:-3], t[-3:]
        groups = []
        while len(head) > 2:
            groups.insert(0, head[-2:])
            head = head[:-2]
        if head:
            groups.insert(0, head)
        return ",".join(groups + [tail])

    def big_amount():
        n = rng.randrange(1_000_000, 999_999_999)
        c = rng.randrange(100)
        s = f"{n:,}"
        return rng.choice([
            s.replace(",", " ") + f",{c:02d} €", s.replace(",", ".") + f",{c:02d} EUR", s.replace(",", "."),
            f"${s}.{c:02d}", "CHF " + s.replace(",", "'") + f".{c:02d}", s.replace(",", "\u202f") + " ₽",
            f"¥{s}", "₹" + indian(n),
        ])

    def isbn13():
        body = "978" + digits(9, False)
        s = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body))
        full = body + str((10 - s % 10) % 10)
        return rng.choice([full, f"{full[:3]}-{full[3]}-{full[4:7]}-{full[7:12]}-{full[12]}", f"{full[:3]}-{full[3:5]}-{full[5:9]}-{full[9:12]}-{full[12]}"])

    def isbn10():
        body = digits(9, False)
        s = sum((10 - i) * int(c) for i, c in enumerate(body))
        chk = (11 - s % 11) % 11
        full = body + ("X" if chk == 10 else str(chk))
        return rng.choice([full, f"{full[0]}-{full[1:4]}-{full[4:9]}-{full[9]}", f"{full[0]}-{full[1:3]}-{full[3:9]}-{full[9]}"])

    def tracking():
        return rng.choice([
            "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTVWXYZ") for _ in range(6)) + digits(10, False),
            "94" + digits(20, False),
            "JD" + digits(16, False),
            "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2)) + digits(9, False) + "GB",
        ])

    def mac():
        return ":".join(hexs(2).upper() for _ in range(6))

    def order_spaced():
        n = rng.choice([12, 13, 14, 15, 16])
        d = luhn_bad(rng.choice("123456789"), n)
        return " ".join(d[i : i + 4] for i in range(0, n, 4))

    def uk_postcode():
        return rng.choice(["SW1A 1AA", "EC1A 1BB", "W1A 0AX", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT", "EH1 1YZ", "LS1 4DY", "BT7 1NN"])

    def plz_city():
        return rng.choice([f"{rng.randrange(10000, 99999)} Berlin", f"{rng.randrange(10000, 99999)} München", f"{rng.randrange(10000, 99999)} Hamburg",
                           f"D-{rng.randrange(10000, 99999)} Köln", f"A-{rng.randrange(1000, 9999)} Wien", f"CH-{rng.randrange(1000, 9999)} Zürich"])

    def zip4():
        return f"{rng.randrange(10000, 99999)}-{rng.randrange(1000, 9999)}"

    def sort_code():
        return f"{rng.randrange(10, 99)}-{rng.randrange(10, 99)}-{rng.randrange(10, 99)}"

    def product10():
        return digits(rng.choice([10, 11]))

    def unix_ts():
        return rng.choice([str(rng.randrange(1_000_000_000, 1_900_000_000)), str(rng.randrange(1_600_000_000_000, 1_800_000_000_000))])

    def pop_number():
        n = rng.randrange(1_000_000, 99_999_999)
        return rng.choice([f"{n:,}".replace(",", " "), f"{n:,}".replace(",", "."), f"{n:,}", str(n)])

    def coords():
        la, lo = rng.uniform(-90, 90), rng.uniform(-180, 180)
        return rng.choice([f"{la:.6f}, {lo:.6f}", f"{abs(la):.4f}° {'N' if la >= 0 else 'S'}, {abs(lo):.4f}° {'E' if lo >= 0 else 'W'}",
                           f"{int(abs(la))}°{rng.randrange(60)}′{rng.randrange(60)}″{'N' if la >= 0 else 'S'} {int(abs(lo))}°{rng.randrange(60)}′{rng.randrange(60)}″{'E' if lo >= 0 else 'W'}"])

    def ports():
        ps = sorted(rng.sample([22, 80, 443, 3000, 3306, 5432, 6379, 8000, 8080, 8443, 9090, 9200, 11211, 27017], rng.randrange(3, 7)))
        return rng.choice([", ".join(map(str, ps)), " ".join(map(str, ps)), ",".join(map(str, ps))])

    def serial():
        return rng.choice([
            f"{hexs(4).upper()}-{hexs(4).upper()}-{hexs(4).upper()}-{hexs(4).upper()}",
            "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(10)),
            f"{rng.randrange(10, 99)}{rng.choice('ABCDEFGH')}{digits(7)}",
            f"{digits(4)}-{digits(4)}-{digits(4)}",
        ])

    def table_row():
        y = rng.randrange(1990, 2025)
        return f"| {y} | {pop_number()} | {pop_number()} | {rng.randrange(1, 99)}.{rng.randrange(10)} % |"

    makers = [
        # carried over from the first corpus
        lambda: f"Where is my order #{card_like_bad()}? It was supposed to arrive yesterday.",
        lambda: f"Order number {bad_luhn16()} shipped on {date()}.",
        lambda: f"Reference: {bad_luhn16()}",
        lambda: f"The account id {bad_luhn16()} appears in the audit table twice.",
        lambda: f"Event timestamp {unix_ts()} was logged by the collector.",
        lambda: f"created_at={iso_ts()} updated_at={iso_ts()}",
        lambda: f"Upgrade the dependency from {version()} to {version()} before the release.",
        lambda: f"We are running nginx {version()} on Debian.",
        lambda: f"Request id {uuid()} failed with status 502.",
        lambda: f"trace_id: {uuid()}",
        lambda: f"The test data uses the placeholder SSN {bad_ssn()}, which is invalid by design.",
        lambda: f"Form field error: '{bad_ssn()}' is not a valid social security number.",
        lambda: f"IBAN check failed for {bad_iban()}; please double-check the digits.",
        lambda: f"git cherry-pick {hexs(40)}",
        lambda: f"Fixed in commit {hexs(7)} (see also {hexs(12)}).",
        lambda: f"sha256: {hexs(64)}",
        lambda: f"md5sum of the archive is {hexs(32)}",
        lambda: f"The meeting moved to {date()} at {rng.randrange(1, 13)}:{rng.choice(['00', '15', '30', '45'])} pm.",
        lambda: f"Total due: {price()} (tax included), next invoice on {date()}.",
        lambda: f"ISBN {isbn13()} is the second edition.",
        lambda: f"Tracking number {tracking()} shows 'in transit'.",
        lambda: f"The build {rng.randrange(10000, 99999)} took {rng.randrange(1, 59)}m{rng.randrange(0, 59)}s.",
        lambda: f"Device MAC {mac()} is allowed on the lab network.",
        lambda: f"Coordinates: {coords()}",
        lambda: f"Invoice INV-{rng.randrange(2019, 2026)}-{rng.randrange(100000, 999999)} is overdue.",
        lambda: f"Part number {rng.randrange(100, 999)}-{rng.randrange(10, 99)}-{rng.randrange(10000, 99999)} is out of stock.",
        lambda: f"Population grew from {rng.randrange(1_000_000, 9_000_000):,} to {rng.randrange(1_000_000, 9_000_000):,}.",
        lambda: f"Use the ratio {rng.randrange(1, 30)}:{rng.randrange(1, 30)}:{rng.randrange(1, 30)} for the mix.",
        lambda: f"Process {rng.randrange(1000, 99999)} used {rng.randrange(100, 99999)} KB; uptime {rng.randrange(0, 99)}:{rng.randrange(0, 59):02d}:{rng.randrange(0, 59):02d}.",
        lambda: f"Serial: {serial()}",
        # dates / times / durations
        lambda: f"The contract runs from {date()} to {date()}.",
        lambda: f"Termin am {date()} um {time_()}.",
        lambda: f"会议改到{rng.randrange(2019, 2027)}年{rng.randrange(1, 13)}月{rng.randrange(1, 29)}日 {rng.randrange(8, 20)}:{rng.choice(['00', '15', '30', '45'])}。",
        lambda: f"Deadline: {date()}, {time_()}",
        lambda: f"[{iso_ts()}] INFO worker-{rng.randrange(1, 16)} job {rng.randrange(10000, 999999)} finished in {duration()}",
        lambda: f"The backup took {duration()} (started {iso_ts()}).",
        lambda: f"Flight LH{rng.randrange(100, 9999)} departs {date()} {time_()} from gate B{rng.randrange(1, 60)}.",
        lambda: f"Opening hours {rng.randrange(7, 11):02d}:00–{rng.randrange(16, 23):02d}:30, {date()} closed.",
        # order / invoice / ticket numbers
        lambda: f"Invoice INV-{rng.randrange(2019, 2027)}-{rng.randrange(0, 999999):06d} was paid on {date()}.",
        lambda: f"ORD {order_spaced()} is ready for pickup.",
        lambda: f"Your ticket {rng.choice(['TKT', 'INC', 'REQ', 'CS'])}-{digits(rng.choice([6, 7, 8, 10]))} has been updated.",
        lambda: f"PO #{rng.choice(['45', '48'])}{digits(8, False)} approved by finance.",
        lambda: f"RMA {rng.randrange(2019, 2027)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 9999):04d} received at the warehouse.",
        lambda: f"Case number {digits(8, False)} escalated to tier 2.",
        lambda: f"Booking reference {order_spaced()}",
        lambda: f"Auftragsnummer {digits(4)}-{digits(4)}-{digits(4)} vom {date()}",
        lambda: f"Quote Q-{digits(3)}-{digits(3)}-{digits(4)} expires {date()}.",
        # publishing / software identifiers
        lambda: f"ISBN-10 {isbn10()} (paperback), ISBN-13 {isbn13()}.",
        lambda: f"See doi:10.{rng.randrange(1000, 9999)}/{rng.choice(['s', 'j.', 'nature'])}{digits(5, False)}-{rng.randrange(2000, 2025)}-{digits(4, False)}-{rng.randrange(1, 9)}",
        lambda: f"https://doi.org/10.{rng.randrange(1000, 99999)}/{digits(7, False)}",
        lambda: f"Released {version()} (build {rng.randrange(2019, 2026)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}.{rng.randrange(1, 20)}).",
        lambda: f"Windows build 10.0.{rng.randrange(17000, 26100)}.{rng.randrange(1000, 5000)} needs the update.",
        lambda: f"CVE-{rng.randrange(2015, 2026)}-{rng.randrange(1000, 99999)} is fixed in {version()}.",
        lambda: f"pip install package=={rng.randrange(0, 30)}.{rng.randrange(0, 30)}.{rng.randrange(0, 30)}",
        lambda: f"Jenkins build #{rng.randrange(1000, 99999)} for commit {hexs(10)} passed.",
        # postal codes
        lambda: f"Ship to 742 Evergreen Terrace, Springfield, IL {zip4()}.",
        lambda: f"The parcel is going to {uk_postcode()}, second floor.",
        lambda: f"Lieferadresse: Hauptstraße {rng.randrange(1, 200)}, {plz_city()}",
        lambda: f"ZIP {zip4()} / {zip4()} are in the same county.",
        # bank-ish, no context
        lambda: f"Sort code {sort_code()}, see the statement from {date()}.",
        lambda: f"Ref {digits(8)} / {digits(8)}",
        lambda: f"Transferred {big_amount()} on {date()}.",
        lambda: f"Umsatz {big_amount()} im Geschäftsjahr {rng.randrange(2015, 2025)}.",
        lambda: f"The budget is {big_amount()} for {rng.randrange(2024, 2030)}.",
        # measurements / science / tables
        lambda: f"Speed of light: 299 792 458 m/s; Earth radius {rng.randrange(6300, 6400)} km; pressure {rng.randrange(950, 1050)},{rng.randrange(10, 99)} hPa.",
        lambda: f"population {pop_number()} (census {rng.randrange(1990, 2024)})",
        lambda: table_row(),
        lambda: f"{rng.randrange(10, 99)}! ≈ {digits(3)} {digits(3)} {digits(3)} {digits(3)} × 10^{rng.randrange(10, 150)}",
        lambda: f"2^{rng.randrange(30, 40)} = {2 ** rng.randrange(30, 40)}",
        lambda: f"The distance is {rng.randrange(100, 999)} {rng.randrange(100, 999):03d} km ({rng.randrange(100, 999)} {rng.randrange(100, 999):03d} mi).",
        lambda: f"Dataset has {pop_number()} rows and {rng.randrange(10, 999)} columns; {pop_number()} nulls.",
        lambda: f"Primes: {', '.join(str(p) for p in rng.sample([1000003, 1000033, 1000037, 1000039, 15485863, 32452843, 49979687, 86028121, 104395301], 3))}",
        # infrastructure
        lambda: f"Open ports: {ports()}",
        lambda: f"EXPOSE {ports().replace(',', ' ')}",
        lambda: f"Listening on :{rng.randrange(1024, 65535)} and :{rng.randrange(1024, 65535)}",
        lambda: f"Container {hexs(12)} restarted {rng.randrange(2, 40)} times since {unix_ts()}.",
        # product / serial codes without context
        lambda: f"Item {product10()} is back in stock.",
        lambda: f"SKU {product10()} - {rng.choice(['blue', 'red', 'black'])}, size {rng.choice(['S', 'M', 'L', 'XL'])}",
        lambda: f"Model {rng.choice(['SM', 'KD', 'XR', 'HP'])}-{rng.choice('ABCGNX')}{digits(3)}{rng.choice('BUFN')}, S/N {serial()}",
        lambda: f"Lot {digits(6)}-{digits(2)}, best before {date()}",
        lambda: f"{product10()} {product10()} {product10()}",
        # card-length numbers with brand prefixes that fail Luhn
        lambda: f"Reference {brand_bad()} was rejected by the ledger.",
        lambda: f"Batch id {brand_bad()}",
        lambda: f"The sample value {brand_bad()} fails the checksum, use it for negative tests.",
        lambda: f"Kontrollnummer {brand_bad()}",
        # misc identifiers
        lambda: f"Room {rng.randrange(100, 999)}, building {rng.choice('ABCDE')}, floor {rng.randrange(1, 20)}.",
        lambda: f"Lottery numbers: {' '.join(str(x) for x in sorted(rng.sample(range(1, 50), 6)))}",
        lambda: f"Score {rng.randrange(0, 9)}-{rng.randrange(0, 9)} after {rng.randrange(45, 120)} minutes.",
        lambda: f"Pages {rng.randrange(100, 999)}-{rng.randrange(1000, 1999)} of volume {rng.randrange(1, 99)}.",
        lambda: f"CAS {rng.randrange(50, 99999)}-{rng.randrange(10, 99)}-{rng.randrange(0, 9)}",
        lambda: f"Patch {date()}: KB{digits(7)}",
    ]
    seen: set[str] = set()
    rows = []
    i = 0
    rejected = 0
    while len(rows) < NEG_TARGET:
        t = makers[i % len(makers)]()
        i += 1
        if t in seen:
            continue
        if not negative_is_clean(t):
            rejected += 1
            continue
        seen.add(t)
        rows.append(row(f"pii-neg-{len(rows):04d}", t, [], "faker-negatives", "faker-negatives", split_of(t), None))
    build_negatives.rejected = rejected  # type: ignore[attr-defined]
    return rows


# ---------------------------------------------------------------------------

def main() -> int:
    # Some faker locale data (e.g. it_IT cities) is held in sets, whose order depends on
    # string hashing: pin the hash seed so the output is byte-identical between runs.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(OUT_DEFAULT))
    args = ap.parse_args()

    import faker

    if faker.VERSION != FAKER_VERSION:
        print(f"warning: faker {faker.VERSION} installed, corpus was built with {FAKER_VERSION}", file=sys.stderr)

    rows: list[dict] = []
    rows += build_simple(random.Random(SEED))
    rows += build_phones(random.Random(SEED + 1))
    rows += build_cards(random.Random(SEED + 2))
    rows += build_negatives(random.Random(SEED + 3))
    # positives come first grouped by type in a fixed order
    order = {t: i for i, t in enumerate(["email", "phone", "card", "ssn", "iban", "ipv4", "ipv6"])}
    rows.sort(key=lambda r: (order[r["spans"][0]["type"]] if r["spans"] else 99))
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    # counts
    spans = collections.Counter()
    lines = collections.Counter()
    for r in rows:
        if r["spans"]:
            t = r["spans"][0]["type"]
            lines[(t, r["split"])] += 1
            for sp in r["spans"]:
                spans[(sp["type"], r["split"])] += 1
        else:
            lines[("negative", r["split"])] += 1
    print(f"wrote {out} ({len(rows)} lines)")
    print(f"{'type':<10}{'lines tune':>12}{'lines test':>12}{'spans tune':>12}{'spans test':>12}")
    for t in ["email", "phone", "card", "ssn", "iban", "ipv4", "ipv6", "negative"]:
        print(f"{t:<10}{lines[(t, 'tune')]:>12}{lines[(t, 'test')]:>12}{spans[(t, 'tune')]:>12}{spans[(t, 'test')]:>12}")
    ploc = collections.Counter()
    pctx = collections.Counter()
    for r in rows:
        for sp in r["spans"]:
            if sp["type"] == "phone":
                ploc[(r["split"], r["locale"])] += 1
                pctx[(r["split"], sp["context"])] += 1
    print("phone spans per locale:")
    for split in ("tune", "test"):
        print(f"  {split}: " + ", ".join(f"{loc} {n}" for (s, loc), n in sorted(ploc.items()) if s == split))
        print(f"  {split}: context={pctx[(split, True)]} no-context={pctx[(split, False)]}")
    brands = collections.Counter(sp["brand"].split(":")[0] for r in rows for sp in r["spans"] if sp["type"] == "card")
    print("card spans per brand: " + ", ".join(f"{b} {n}" for b, n in sorted(brands.items())))
    print(f"negatives rejected for containing valid PII: {getattr(build_negatives, 'rejected', 0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
