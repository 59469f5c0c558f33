#!/usr/bin/env python3
"""Build Tollgate's HELD-OUT secret-detection evaluation set.

Writes eval/corpus/secrets_generated.jsonl (stdlib only, deterministic: fixed seed).

    python3 eval/build_secrets.py            # build + validate + print counts
    python3 eval/build_secrets.py --check    # only validate the existing file

Independence: every secret is synthesised here from the vendors' *publicly documented*
token formats (prefix, length, alphabet, checksum where documented). Nothing is read from
the detector's sources, its docs or its development fixtures, so this set can be used to
measure generalisation rather than memorisation.

Positive lines (label "secret") embed exactly ONE generated credential in a realistic
context (.env, YAML/JSON config, code, curl, logs, stack traces, chat, compose, k8s,
Terraform, ...). `spans` give UTF-8 *byte* offsets of the credential material itself:
  * for URLs / connection strings that carry a password or key (postgres://u:PW@h/db,
    Azure `AccountKey=`), the span covers only the password / key;
  * for webhook URLs whose whole URL is the secret (Slack, Discord), the whole URL;
  * for HTTP Basic auth, the base64 blob; for PEM private keys, the whole
    BEGIN..END block exactly as it appears in the text (it may be JSON-escaped with
    literal "\\n" or indented inside YAML).
Negative lines (label "no_secret", spans []) contain no credential but look similar
(hashes, ids, public keys, placeholders, variable references, docs about formats, ...).
Vendor documentation example keys (AKIAIOSFODNN7EXAMPLE, ...) are treated as negatives.

Fields: id, text, label, kind, spans, source, split.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import json
import random
import string
import struct
import sys
from collections import Counter
from pathlib import Path

SEED = 20240917
SOURCE = "generated:eval/build_secrets.py"
OUT = Path(__file__).resolve().parent / "corpus" / "secrets_generated.jsonl"
PER_KIND = 10
NEG_PER_CATEGORY = 24

UP = string.ascii_uppercase
LO = string.ascii_lowercase
DI = string.digits
AN = UP + LO + DI
B62 = DI + UP + LO
HEXL = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
URLS = AN + "-_"
B64C = AN + "+/"
B32 = UP + "234567"
BECH32U = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

R = random.Random(SEED)


def rs(alpha: str, n: int) -> str:
    return "".join(R.choice(alpha) for _ in range(n))


def rbytes(n: int) -> bytes:
    return bytes(R.getrandbits(8) for _ in range(n))


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def base62(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return out.rjust(width, "0")


def crc_token(prefix: str, nrand: int = 30) -> str:
    """GitHub / npm style: random base62 body + 6-char base62 CRC32 checksum of the body."""
    body = rs(B62, nrand)
    return prefix + body + base62(binascii.crc32(body.encode()) & 0xFFFFFFFF, 6)


def pick(seq):
    return R.choice(seq)


def strong_password(n: int | None = None, url_safe: bool = False) -> str:
    n = n or R.randint(16, 28)
    sym = "-_.~!*" if url_safe else "!@%^*-_+=.?~"
    while True:
        p = rs(AN + sym * 2, n)
        if (any(c in UP for c in p) and any(c in LO for c in p) and any(c in DI for c in p)
                and any(c in sym for c in p) and p[0] in AN):
            return p


# --------------------------------------------------------------------------- generators
# A generator returns either the secret string, or (fragment, start, end) where the secret
# is fragment[start:end] (e.g. the password inside a database URL).

def g_github(prefix):
    return lambda: crc_token(prefix)


def g_github_fine():
    return "github_pat_" + rs(B62, 22) + "_" + rs(B62, 59)


def g_aws_id():
    return pick(["AKIA", "AKIA", "ASIA"]) + rs(B32, 16)


def g_aws_secret():
    return rs(B64C, 40)


def g_slack_bot():
    return f"xoxb-{rs(DI, R.randint(10, 13))}-{rs(DI, R.randint(10, 13))}-{rs(AN, 24)}"


def g_slack_user():
    return f"xoxp-{rs(DI, 12)}-{rs(DI, 12)}-{rs(DI, 13)}-{rs(HEXL, 32)}"


def g_slack_app():
    return f"xapp-1-A{rs(UP + DI, 10)}-{rs(DI, 13)}-{rs(HEXL, 64)}"


def g_slack_webhook():
    return f"https://hooks.slack.com/services/T{rs(UP + DI, 8)}/B{rs(UP + DI, 10)}/{rs(AN, 24)}"


def g_stripe(prefix):
    def g():
        if R.random() < 0.6:
            return prefix + "51" + rs(AN, 97)
        return prefix + rs(AN, 24)
    return g


def g_whsec():
    return "whsec_" + rs(AN, 32)


def g_openai(prefix):
    return lambda: prefix + rs(URLS, 74) + "T3BlbkFJ" + rs(URLS, 74)


def g_anthropic(prefix):
    return lambda: prefix + rs(URLS, 93) + "AA"


def g_google_api():
    return "AIza" + rs(URLS, 35)


def g_gocspx():
    return "GOCSPX-" + rs(URLS, 28)


def g_pypi():
    import uuid as _uuid  # stdlib; uuid built from our RNG bits for determinism
    ident = str(_uuid.UUID(int=R.getrandbits(128), version=4)).encode()
    if R.random() < 0.5:
        cav = b'{"version":1,"permissions":"user"}'
    else:
        proj = pick(["fastq-tools", "tollkit", "pyconfigx", "aiohttp-retry2", "mkdocs-nebula"])
        cav = ('{"version":1,"permissions":{"projects":["%s"]}}' % proj).encode()
    raw = (b"\x02\x01\x08pypi.org\x02" + bytes([len(ident)]) + ident + b"\x00\x00\x02"
           + bytes([len(cav)]) + cav + b"\x00\x00\x06\x20" + rbytes(32))
    return "pypi-" + b64u(raw)


def g_sendgrid():
    return f"SG.{rs(URLS, 22)}.{rs(URLS, 43)}"


def g_discord_bot():
    uid = str(R.randint(10**17, 13 * 10**17))
    return f"{b64u(uid.encode())}.{rs(URLS, 6)}.{rs(URLS, 38)}"


def g_discord_webhook():
    return f"https://discord.com/api/webhooks/{R.randint(10**17, 13 * 10**17)}/{rs(URLS, 68)}"


def g_telegram():
    return f"{R.randint(10**8, 8 * 10**9)}:AA{rs(URLS, 33)}"


def g_azure_conn():
    acct = pick(["prodassets", "stlogsweu01", "contosodata", "mlartifacts42", "backupvault7"])
    key = b64(rbytes(64))
    pre = f"DefaultEndpointsProtocol=https;AccountName={acct};AccountKey="
    return (pre + key + ";EndpointSuffix=core.windows.net", len(pre), len(pre) + len(key))


def g_azure_ad():
    return rs(AN, 3) + rs(DI, 1) + "Q~" + rs(AN + "_.~-", 34)


def g_jwt():
    alg = pick(["HS256", "HS256", "RS256", "ES256"])
    head = {"alg": alg, "typ": "JWT"}
    if alg != "HS256":
        head["kid"] = rs(URLS, 16)
    now = R.randint(1_700_000_000, 1_740_000_000)
    body = {"sub": pick([str(R.randint(1000, 999999)), "user_" + rs(AN, 10), rs(HEXL, 24)]),
            "iat": now, "exp": now + pick([900, 3600, 86400]),
            "iss": pick(["https://auth.example-corp.io", "accounts.tollgate-demo.dev", "https://login.acme.io/"]),
            "scope": pick(["read write", "admin", "openid profile email", "repo:read"])}
    if R.random() < 0.5:
        body["email"] = pick(["dana", "li.wei", "omar", "k.svensson"]) + "@" + pick(["acme.io", "contoso.com"])
    sig = rbytes({"HS256": 32, "RS256": 256, "ES256": 64}[alg])
    return ".".join([b64u(json.dumps(head, separators=(",", ":")).encode()),
                     b64u(json.dumps(body, separators=(",", ":")).encode()), b64u(sig)])


def wrap(s: str, n: int) -> list[str]:
    return [s[i:i + n] for i in range(0, len(s), n)]


def pem(label: str, der: bytes, width: int = 64) -> str:
    return "\n".join([f"-----BEGIN {label}-----", *wrap(b64(der), width), f"-----END {label}-----"])


def der_rsa() -> bytes:
    return b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00" + rbytes(1180)


def der_ec() -> bytes:
    return (b"\x30\x77\x02\x01\x01\x04\x20" + rbytes(32)
            + b"\xa0\x0a\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\xa1\x44\x03\x42\x00\x04" + rbytes(64))


def der_pkcs8() -> bytes:
    return (b"\x30\x82\x04\xbe\x02\x01\x00\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00"
            b"\x04\x82\x04\xa8\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00" + rbytes(1180))


def sshstr(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def openssh_ed25519() -> bytes:
    pub = rbytes(32)
    pubblob = sshstr(b"ssh-ed25519") + sshstr(pub)
    check = rbytes(4)
    comment = pick([b"deploy@ci", b"dana@laptop", b"root@bastion-1", b"git@build"])
    priv = (check + check + sshstr(b"ssh-ed25519") + sshstr(pub) + sshstr(rbytes(32) + pub) + sshstr(comment))
    priv += bytes(range(1, 1 + (-len(priv)) % 8))
    return (b"openssh-key-v1\x00" + sshstr(b"none") + sshstr(b"none") + sshstr(b"")
            + struct.pack(">I", 1) + sshstr(pubblob) + sshstr(priv))


def g_pem_rsa():
    return pem("RSA PRIVATE KEY", der_rsa())


def g_pem_ec():
    return pem("EC PRIVATE KEY", der_ec())


def g_pem_pkcs8():
    return pem("PRIVATE KEY", der_pkcs8())


def g_pem_openssh():
    return pem("OPENSSH PRIVATE KEY", openssh_ed25519(), 70)


DB_USERS = ["app", "billing_rw", "analytics", "svc_orders", "admin", "django", "etl_job", "root"]
PG_HOSTS = ["db.internal.acme.io", "prod-pg-01.c9xkq2mw3n.eu-west-1.rds.amazonaws.com", "10.20.3.14",
            "pg-main.postgres.database.azure.com", "orders-db"]
MY_HOSTS = ["mysql-primary.svc.cluster.local", "10.20.3.15", "shop-db.c9xkq2mw3n.us-east-1.rds.amazonaws.com", "mariadb"]


def g_db(scheme):
    def g():
        user, pw = pick(DB_USERS), strong_password(R.randint(14, 24), url_safe=True)
        if scheme == "postgres":
            pre = f"{pick(['postgres', 'postgresql'])}://{user}:"
            post = f"@{pick(PG_HOSTS)}:5432/{pick(['app', 'orders', 'billing', 'analytics'])}" + pick(["", "?sslmode=require", ""])
        elif scheme == "mysql":
            pre = f"{pick(['mysql', 'mysql+pymysql', 'mysql2'])}://{user}:"
            post = f"@{pick(MY_HOSTS)}:3306/{pick(['shop', 'wordpress', 'crm'])}"
        elif scheme == "mongodb":
            pre = f"mongodb+srv://{user}:"
            post = f"@cluster0.{rs(LO + DI, 5)}.mongodb.net/{pick(['prod', 'app', 'events'])}?retryWrites=true&w=majority"
        else:
            pre = pick(["redis://:", f"rediss://default:"])
            post = f"@{pick(['redis-12345.c1.us-east-1-2.ec2.cloud.redislabs.com:12345', 'cache.internal:6379', 'redis-master:6379'])}/0"
        return (pre + pw + post, len(pre), len(pre) + len(pw))
    return g


def g_generic_key():
    return pick([lambda: rs(AN, R.randint(32, 48)), lambda: rs(HEXL, pick([32, 40, 64])),
                 lambda: b64(rbytes(pick([24, 30, 33]))), lambda: rs(URLS, 43)])()


def g_client_secret():
    return pick([lambda: rs(AN, 40), lambda: rs(URLS, 32), lambda: rs(HEXL, 40), lambda: rs(AN + "_-", 48)])()


def g_basic():
    user = pick(["admin", "deploy", "ci-bot", "grafana", "jenkins", "api", "svc-reporting"])
    return b64(f"{user}:{strong_password(R.randint(14, 22))}".encode())


def g_bearer():
    return pick([lambda: rs(AN, R.randint(40, 64)), lambda: rs(URLS, 43), lambda: rs(HEXL, 64)])()


def g_grafana():
    return "glsa_" + rs(AN, 32) + "_" + rs(HEXL, 8)


def g_sentry():
    if R.random() < 0.5:
        return "sntryu_" + rs(HEXL, 64)
    payload = {"iat": R.randint(1_700_000_000, 1_740_000_000), "url": "https://sentry.io",
               "region_url": "https://us.sentry.io", "org": pick(["acme", "tollgate", "contoso-labs"])}
    return "sntrys_" + b64(json.dumps(payload, separators=(",", ":")).encode()).rstrip("=") + "_" + rs(URLS, 43)


def g_notion():
    if R.random() < 0.7:
        return "ntn_" + rs(DI, 11) + rs(AN, 35)
    return "secret_" + rs(AN, 43)


def g_heroku():
    return "HRKU-AA" + rs(URLS, 58)


def g_vault():
    return "hvs.CAESI" + rs(URLS, 86)


def g_doppler():
    if R.random() < 0.6:
        return f"dp.st.{pick(['dev', 'stg', 'prd', 'ci'])}.{rs(AN, 40)}"
    return "dp.pt." + rs(AN, 43)


def g_tfc():
    return rs(AN, 14) + ".atlasv1." + rs(AN, 67)


def g_mapbox():
    user = pick(["acme-maps", "dana", "fleetview", "geo-team"])
    return "sk." + b64u(json.dumps({"u": user, "a": rs(LO + DI, 25)}, separators=(",", ":")).encode()) + "." + rs(URLS, 22)


def g_tailscale():
    return f"tskey-auth-k{rs(AN, 10)}CNTRL-{rs(AN, 33)}"


def g_atlassian():
    return "ATATT3xFfGF0" + rs(URLS, 171) + "=" + rs(HEXU, 8)


def fixed(prefix, alpha, n):
    return lambda: prefix + rs(alpha, n)


# --------------------------------------------------------------------------- kinds

DEFAULT_URLS = {
    "aws.access_key_id": "https://sts.amazonaws.com/", "aws.secret_access_key": "https://s3.eu-west-1.amazonaws.com/",
    "slack.webhook_url": "https://hooks.slack.com/services", "stripe.webhook_secret": "https://api.stripe.com/v1/webhook_endpoints",
    "google.oauth_client_secret": "https://oauth2.googleapis.com/token", "gitlab.runner_token": "https://gitlab.com/api/v4/runners/verify",
    "pypi.api_token": "https://upload.pypi.org/legacy/", "docker.pat": "https://hub.docker.com/v2/users/login",
    "twilio.api_key": "https://api.twilio.com/2010-04-01/Accounts.json", "mailgun.api_key": "https://api.mailgun.net/v3/domains",
    "atlassian.api_token": "https://acme.atlassian.net/rest/api/3/myself", "discord.webhook_url": "https://discord.com/api/v10",
    "telegram.bot_token": "https://api.telegram.org", "azure.storage_connection_string": "https://prodassets.blob.core.windows.net",
    "azure.ad_client_secret": "https://login.microsoftonline.com/organizations/oauth2/v2.0/token",
    "generic.client_secret": "https://sso.acme.io/oauth/token", "generic.password": "https://admin.acme.io/login",
    "nuget.api_key": "https://api.nuget.org/v3/index.json", "planetscale.service_token": "https://api.planetscale.com/v1/organizations",
    "mapbox.secret_token": "https://api.mapbox.com/tokens/v2", "age.secret_key": "https://vault.acme.io/sops",
    "alibaba.access_key_id": "https://ecs.aliyuncs.com/", "tailscale.auth_key": "https://login.tailscale.com",
    "db.postgres_url": "https://db.internal.acme.io", "db.mysql_url": "https://db.internal.acme.io",
    "db.mongodb_url": "https://cloud.mongodb.com", "db.redis_url": "https://cache.internal.acme.io",
}


def K(kind, gen, vars, label, url=None, hdr="Authorization: Bearer <<S>>", mod=None, extra=(),
      groups=("cfg", "code", "talk", "hdr")):
    if hdr is None:
        groups = tuple(g for g in groups if g != "hdr")
    return dict(kind=kind, gen=gen, vars=vars, label=label, url=url or DEFAULT_URLS[kind],
                hdr=hdr, mod=mod or kind.split(".")[0], extra=list(extra), groups=groups)


KINDS = [
    K("github.pat_classic", g_github("ghp_"), ["GITHUB_TOKEN", "GH_TOKEN", "GITHUB_PAT"], "GitHub personal access token",
      "https://api.github.com/user/repos?per_page=100", "Authorization: token <<S>>", "github",
      ["git clone https://<<S>>@github.com/acme-corp/payments-service.git\nCloning into 'payments-service'...\nremote: Repository not found.",
       "$ cat ~/.npmrc\n//npm.pkg.github.com/:_authToken=<<S>>\n@acme-corp:registry=https://npm.pkg.github.com"]),
    K("github.oauth_token", g_github("gho_"), ["GITHUB_OAUTH_TOKEN", "GH_TOKEN"], "GitHub OAuth token",
      "https://api.github.com/user", "Authorization: Bearer <<S>>", "github",
      ["$ cat ~/.config/gh/hosts.yml\ngithub.com:\n    user: dana-k\n    oauth_token: <<S>>\n    git_protocol: ssh"]),
    K("github.app_installation_token", g_github("ghs_"), ["GITHUB_APP_TOKEN", "INSTALLATION_TOKEN"], "GitHub App installation token",
      "https://api.github.com/repos/acme-corp/infra/pulls", "Authorization: Bearer <<S>>", "github",
      ["git push https://x-access-token:<<S>>@github.com/acme-corp/infra.git HEAD:refs/heads/bot/update-deps"]),
    K("github.fine_grained_pat", g_github_fine, ["GITHUB_TOKEN", "GH_PAT"], "fine-grained GitHub token",
      "https://api.github.com/repos/acme-corp/web/contents/README.md", "Authorization: Bearer <<S>>", "github"),
    K("aws.access_key_id", g_aws_id, ["AWS_ACCESS_KEY_ID"], "AWS access key id", hdr=None, mod="boto3",
      extra=["[default]\naws_access_key_id = <<S>>\nregion = <<region>>",
             "botocore.exceptions.ClientError: An error occurred (InvalidClientTokenId) when calling the GetCallerIdentity operation: The security token included in the request is invalid.\n  access key: <<S>>",
             "s3 = boto3.client(\"s3\", region_name=\"<<region>>\", aws_access_key_id=\"<<S>>\")"]),
    K("aws.secret_access_key", g_aws_secret, ["AWS_SECRET_ACCESS_KEY"], "AWS secret access key", hdr=None, mod="boto3",
      extra=["[profile prod]\nregion = <<region>>\naws_secret_access_key = <<S>>\noutput = json",
             "session = boto3.Session(\n    region_name=\"<<region>>\",\n    aws_secret_access_key=\"<<S>>\",\n)"]),
    K("slack.bot_token", g_slack_bot, ["SLACK_BOT_TOKEN", "SLACK_TOKEN"], "Slack bot token",
      "https://slack.com/api/chat.postMessage", mod="slack_sdk",
      extra=["from slack_sdk import WebClient\n\nclient = WebClient(token=\"<<S>>\")\nclient.chat_postMessage(channel=\"#deploys\", text=\"build green\")"]),
    K("slack.user_token", g_slack_user, ["SLACK_USER_TOKEN"], "Slack user token", "https://slack.com/api/users.list", mod="slack_sdk"),
    K("slack.app_token", g_slack_app, ["SLACK_APP_TOKEN"], "Slack app-level token", "https://slack.com/api/apps.connections.open", mod="slack_bolt",
      extra=["handler = SocketModeHandler(app, \"<<S>>\")\nhandler.start()"]),
    K("slack.webhook_url", g_slack_webhook, ["SLACK_WEBHOOK_URL", "SLACK_WEBHOOK"], "Slack webhook", hdr=None,
      extra=["curl -X POST -H 'Content-type: application/json' --data '{\"text\":\"Deploy finished :rocket:\"}' <<S>>",
             "receivers:\n- name: oncall\n  slack_configs:\n  - api_url: <<S>>\n    channel: '#alerts'\n    send_resolved: true",
             "requests.post(\"<<S>>\", json={\"text\": f\"nightly job failed: {err}\"})"]),
    K("stripe.secret_key", g_stripe("sk_live_"), ["STRIPE_SECRET_KEY", "STRIPE_API_KEY"], "Stripe secret key",
      "https://api.stripe.com/v1/charges", mod="stripe",
      extra=["import stripe\nstripe.api_key = \"<<S>>\"\nintent = stripe.PaymentIntent.create(amount=2000, currency=\"eur\")",
             "curl https://api.stripe.com/v1/customers -u <<S>>: -d email=\"jenny@example.com\"",
             "const stripe = require('stripe')('<<S>>');"]),
    K("stripe.restricted_key", g_stripe("rk_live_"), ["STRIPE_RESTRICTED_KEY", "STRIPE_KEY"], "Stripe restricted key",
      "https://api.stripe.com/v1/balance", mod="stripe"),
    K("stripe.webhook_secret", g_whsec, ["STRIPE_WEBHOOK_SECRET"], "Stripe webhook signing secret", hdr=None, mod="stripe",
      extra=["event = stripe.Webhook.construct_event(payload, sig_header, \"<<S>>\")",
             "$ stripe listen --forward-to localhost:4242/webhook\n> Ready! Your webhook signing secret is <<S>> (^C to quit)"]),
    K("openai.project_key", g_openai("sk-proj-"), ["OPENAI_API_KEY"], "OpenAI API key",
      "https://api.openai.com/v1/chat/completions", mod="openai",
      extra=["from openai import OpenAI\nclient = OpenAI(api_key=\"<<S>>\")\nresp = client.responses.create(model=\"gpt-4.1-mini\", input=\"hi\")"]),
    K("openai.service_account_key", g_openai("sk-svcacct-"), ["OPENAI_API_KEY", "OPENAI_KEY"], "OpenAI service account key",
      "https://api.openai.com/v1/models", mod="openai"),
    K("openai.admin_key", g_openai("sk-admin-"), ["OPENAI_ADMIN_KEY"], "OpenAI admin key",
      "https://api.openai.com/v1/organization/users", mod="openai"),
    K("anthropic.api_key", g_anthropic("sk-ant-api03-"), ["ANTHROPIC_API_KEY"], "Anthropic API key",
      "https://api.anthropic.com/v1/messages", "x-api-key: <<S>>", "anthropic",
      extra=["import anthropic\nclient = anthropic.Anthropic(api_key=\"<<S>>\")"]),
    K("anthropic.admin_key", g_anthropic("sk-ant-admin01-"), ["ANTHROPIC_ADMIN_KEY"], "Anthropic admin key",
      "https://api.anthropic.com/v1/organizations/users", "x-api-key: <<S>>", "anthropic"),
    K("google.api_key", g_google_api, ["GOOGLE_API_KEY", "GEMINI_API_KEY", "MAPS_API_KEY"], "Google API key",
      "https://generativelanguage.googleapis.com/v1beta/models", "x-goog-api-key: <<S>>", "google",
      ["curl \"https://maps.googleapis.com/maps/api/geocode/json?address=Berlin&key=<<S>>\""]),
    K("google.oauth_client_secret", g_gocspx, ["GOOGLE_CLIENT_SECRET"], "Google OAuth client secret", hdr=None, mod="google_auth_oauthlib",
      extra=["{\"installed\":{\"client_id\":\"<<num>>-<<lower>>.apps.googleusercontent.com\",\"project_id\":\"acme-prod\",\"auth_uri\":\"https://accounts.google.com/o/oauth2/auth\",\"client_secret\":\"<<S>>\"}}"]),
    K("gitlab.pat", fixed("glpat-", URLS, 20), ["GITLAB_TOKEN", "CI_JOB_TOKEN_OVERRIDE", "GL_TOKEN"], "GitLab token",
      "https://gitlab.com/api/v4/projects", "PRIVATE-TOKEN: <<S>>", "gitlab",
      ["git remote set-url origin https://oauth2:<<S>>@gitlab.com/acme/platform/api.git"]),
    K("gitlab.runner_token", fixed("glrt-", URLS, 20), ["RUNNER_TOKEN", "CI_SERVER_TOKEN"], "GitLab runner token", hdr=None, mod="gitlab",
      extra=["gitlab-runner register --non-interactive --url https://gitlab.com --token <<S>> --executor docker",
             "[[runners]]\n  name = \"docker-runner-01\"\n  url = \"https://gitlab.com\"\n  token = \"<<S>>\"\n  executor = \"docker\""]),
    K("npm.access_token", lambda: crc_token("npm_"), ["NPM_TOKEN", "NODE_AUTH_TOKEN"], "npm token",
      "https://registry.npmjs.org/-/whoami", mod="npm",
      extra=["//registry.npmjs.org/:_authToken=<<S>>", "$ cat .npmrc\nregistry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=<<S>>\nalways-auth=true"]),
    K("pypi.api_token", g_pypi, ["PYPI_TOKEN", "TWINE_PASSWORD", "UV_PUBLISH_TOKEN"], "PyPI token", hdr=None, mod="twine",
      extra=["[pypi]\n  username = __token__\n  password = <<S>>",
             "$ twine upload dist/* -u __token__ -p <<S>>\nUploading distributions to https://upload.pypi.org/legacy/\nERROR    HTTPError: 403 Forbidden"]),
    K("docker.pat", fixed("dckr_pat_", URLS, 27), ["DOCKERHUB_TOKEN", "DOCKER_PASSWORD"], "Docker Hub token", hdr=None, mod="docker",
      extra=["echo \"<<S>>\" | docker login -u acmebuild --password-stdin", "docker login -u dana -p <<S>>\nWARNING! Using --password via the CLI is insecure."]),
    K("huggingface.token", fixed("hf_", UP + LO, 34), ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"], "Hugging Face token",
      "https://huggingface.co/api/whoami-v2", mod="huggingface_hub",
      extra=["from huggingface_hub import login\nlogin(token=\"<<S>>\")", "huggingface-cli login --token <<S>>"]),
    K("sendgrid.api_key", g_sendgrid, ["SENDGRID_API_KEY"], "SendGrid API key", "https://api.sendgrid.com/v3/mail/send", mod="sendgrid",
      extra=["sg = SendGridAPIClient(\"<<S>>\")\nresponse = sg.send(message)"]),
    K("twilio.api_key", fixed("SK", HEXL, 32), ["TWILIO_API_KEY", "TWILIO_API_KEY_SID"], "Twilio API key", hdr=None, mod="twilio"),
    K("mailgun.api_key", fixed("key-", HEXL, 32), ["MAILGUN_API_KEY"], "Mailgun key", hdr=None, mod="mailgun",
      extra=["curl -s --user 'api:<<S>>' https://api.mailgun.net/v3/mg.acme.io/messages -F from='ops@acme.io' -F to='dana@acme.io' -F subject='test'"]),
    K("shopify.access_token", lambda: pick(["shpat_", "shpat_", "shpca_", "shppa_"]) + rs(HEXL, 32), ["SHOPIFY_ACCESS_TOKEN", "SHOPIFY_ADMIN_TOKEN"],
      "Shopify admin token", "https://acme-store.myshopify.com/admin/api/2024-07/products.json", "X-Shopify-Access-Token: <<S>>", "shopify"),
    K("digitalocean.token", lambda: pick(["dop_v1_", "dop_v1_", "doo_v1_"]) + rs(HEXL, 64), ["DIGITALOCEAN_TOKEN", "DO_TOKEN"],
      "DigitalOcean token", "https://api.digitalocean.com/v2/droplets", mod="digitalocean",
      extra=["doctl auth init --access-token <<S>>"]),
    K("databricks.token", lambda: "dapi" + rs(HEXL, 32) + pick(["", "", "-2", "-3"]), ["DATABRICKS_TOKEN"], "Databricks token",
      "https://adb-1234567890123456.7.azuredatabricks.net/api/2.0/clusters/list", mod="databricks",
      extra=["[DEFAULT]\nhost  = https://adb-1234567890123456.7.azuredatabricks.net\ntoken = <<S>>"]),
    K("atlassian.api_token", g_atlassian, ["JIRA_API_TOKEN", "ATLASSIAN_API_TOKEN", "CONFLUENCE_TOKEN"], "Atlassian API token", hdr=None, mod="jira",
      extra=["curl -u dana@acme.io:<<S>> -H \"Accept: application/json\" https://acme.atlassian.net/rest/api/3/myself",
             "jira = JIRA(server=\"https://acme.atlassian.net\", basic_auth=(\"dana@acme.io\", \"<<S>>\"))"]),
    K("discord.bot_token", g_discord_bot, ["DISCORD_TOKEN", "DISCORD_BOT_TOKEN"], "Discord bot token",
      "https://discord.com/api/v10/users/@me", "Authorization: Bot <<S>>", "discord",
      extra=["client.run(\"<<S>>\")", "const client = new Client({ intents: [GatewayIntentBits.Guilds] });\nclient.login('<<S>>');"]),
    K("discord.webhook_url", g_discord_webhook, ["DISCORD_WEBHOOK_URL"], "Discord webhook", hdr=None,
      extra=["curl -H \"Content-Type: application/json\" -d '{\"content\": \"backup done\"}' <<S>>"]),
    K("telegram.bot_token", g_telegram, ["TELEGRAM_BOT_TOKEN", "TG_TOKEN"], "Telegram bot token", hdr=None, mod="telegram",
      extra=["curl -s \"https://api.telegram.org/bot<<S>>/sendMessage?chat_id=-100123456789&text=hello\"",
             "app = ApplicationBuilder().token(\"<<S>>\").build()"]),
    K("azure.storage_connection_string", g_azure_conn, ["AZURE_STORAGE_CONNECTION_STRING", "AzureWebJobsStorage"], "Azure storage connection string",
      hdr=None, mod="azure.storage.blob",
      extra=["blob_service = BlobServiceClient.from_connection_string(\"<<S>>\")",
             "{\n  \"IsEncrypted\": false,\n  \"Values\": {\n    \"AzureWebJobsStorage\": \"<<S>>\",\n    \"FUNCTIONS_WORKER_RUNTIME\": \"python\"\n  }\n}"]),
    K("azure.ad_client_secret", g_azure_ad, ["AZURE_CLIENT_SECRET", "ARM_CLIENT_SECRET"], "Azure AD client secret", hdr=None, mod="azure.identity",
      extra=["az login --service-principal -u <<uuid>> -p <<S>> --tenant <<uuid>>",
             "cred = ClientSecretCredential(tenant_id=\"<<uuid>>\", client_id=\"<<uuid>>\", client_secret=\"<<S>>\")"]),
    K("jwt.token", g_jwt, ["ACCESS_TOKEN", "JWT", "AUTH_TOKEN"], "JWT", "https://api.acme.io/v2/accounts/me", mod="jwt",
      extra=["Cookie: session=<<S>>; theme=dark", "localStorage.setItem('access_token', '<<S>>');",
             "can you decode this jwt and tell me why it's rejected? <<S>>"]),
    K("generic.api_key", g_generic_key, ["API_KEY", "SECRET_TOKEN", "APP_SECRET", "AUTH_TOKEN", "SERVICE_API_KEY", "INTERNAL_API_TOKEN"],
      "API key", "https://internal-api.acme.io/v1/reports", "X-Api-Key: <<S>>", "acme_sdk"),
    K("generic.client_secret", g_client_secret, ["CLIENT_SECRET", "OAUTH_CLIENT_SECRET", "AUTH0_CLIENT_SECRET", "KEYCLOAK_CLIENT_SECRET"],
      "OAuth client secret", hdr=None, mod="authlib",
      extra=["oauth.register(\n    name=\"keycloak\",\n    client_id=\"web-portal\",\n    client_secret=\"<<S>>\",\n    server_metadata_url=\"https://sso.acme.io/realms/main/.well-known/openid-configuration\",\n)",
             "curl -X POST https://sso.acme.io/oauth/token -d grant_type=client_credentials -d client_id=reporting -d client_secret=<<S>>"]),
    K("generic.password", lambda: strong_password(), ["DB_PASSWORD", "ADMIN_PASSWORD", "SMTP_PASSWORD", "POSTGRES_PASSWORD", "MYSQL_ROOT_PASSWORD", "REDIS_PASSWORD"],
      "password", hdr=None, mod="config",
      extra=["{\n  \"host\": \"smtp.acme.io\",\n  \"port\": 587,\n  \"username\": \"alerts@acme.io\",\n  \"password\": \"<<S>>\"\n}",
             "mysql -h db.internal -u admin -p'<<S>>' orders < dump.sql",
             "conn = psycopg2.connect(host=\"db.internal\", user=\"app\", password=\"<<S>>\", dbname=\"orders\")"]),
    K("http.basic_auth", g_basic, ["BASIC_AUTH"], "basic auth header", "https://jenkins.acme.io/job/deploy/build", "Authorization: Basic <<S>>",
      "requests", groups=("talk", "hdr"),
      extra=["location /metrics {\n    proxy_pass http://prometheus:9090;\n    proxy_set_header Authorization \"Basic <<S>>\";\n}"]),
    K("http.bearer_token", g_bearer, ["ACCESS_TOKEN", "BEARER_TOKEN"], "bearer token", "https://api.partner-logistics.com/v3/shipments",
      mod="requests", groups=("talk", "hdr", "code")),
    K("grafana.service_account_token", g_grafana, ["GRAFANA_TOKEN", "GRAFANA_SA_TOKEN"], "Grafana token",
      "https://grafana.acme.io/api/dashboards/uid/k8s-overview", mod="grafana"),
    K("newrelic.user_api_key", fixed("NRAK-", UP + DI, 27), ["NEW_RELIC_API_KEY", "NEWRELIC_USER_KEY"], "New Relic user key",
      "https://api.newrelic.com/graphql", "API-Key: <<S>>", "newrelic"),
    K("sentry.auth_token", g_sentry, ["SENTRY_AUTH_TOKEN"], "Sentry auth token", "https://sentry.io/api/0/projects/", mod="sentry",
      extra=["[auth]\ntoken=<<S>>", "sentry-cli --auth-token <<S>> releases new -p web 2024.9.1"]),
    K("linear.api_key", fixed("lin_api_", AN, 40), ["LINEAR_API_KEY"], "Linear API key", "https://api.linear.app/graphql",
      "Authorization: <<S>>", "linear"),
    K("notion.integration_token", g_notion, ["NOTION_TOKEN", "NOTION_API_KEY"], "Notion integration token",
      "https://api.notion.com/v1/databases/query", mod="notion_client",
      extra=["notion = Client(auth=\"<<S>>\")"]),
    K("postman.api_key", lambda: f"PMAK-{rs(HEXL, 24)}-{rs(HEXL, 34)}", ["POSTMAN_API_KEY"], "Postman API key",
      "https://api.getpostman.com/collections", "X-Api-Key: <<S>>", "postman",
      extra=["newman run https://api.getpostman.com/collections/123?apikey=<<S>> -e staging.json"]),
    K("heroku.api_key", g_heroku, ["HEROKU_API_KEY"], "Heroku API key", "https://api.heroku.com/apps",
      mod="heroku3", extra=["machine api.heroku.com\n  login dana@acme.io\n  password <<S>>"]),
    K("vault.token", g_vault, ["VAULT_TOKEN"], "Vault token", "https://vault.acme.io:8200/v1/secret/data/app",
      "X-Vault-Token: <<S>>", "hvac", extra=["$ vault login <<S>>\nSuccess! You are now authenticated.",
                                              "client = hvac.Client(url=\"https://vault.acme.io:8200\", token=\"<<S>>\")"]),
    K("doppler.token", g_doppler, ["DOPPLER_TOKEN"], "Doppler token", "https://api.doppler.com/v3/configs/config/secrets",
      mod="doppler", extra=["doppler run --token <<S>> -- npm start"]),
    K("terraform.cloud_token", g_tfc, ["TFE_TOKEN", "TF_API_TOKEN", "TF_TOKEN_app_terraform_io"], "Terraform Cloud token",
      "https://app.terraform.io/api/v2/organizations", mod="terraform",
      extra=["credentials \"app.terraform.io\" {\n  token = \"<<S>>\"\n}",
             "{\n  \"credentials\": {\n    \"app.terraform.io\": {\n      \"token\": \"<<S>>\"\n    }\n  }\n}"]),
    K("cloudflare.api_token", fixed("", URLS, 40), ["CLOUDFLARE_API_TOKEN", "CF_API_TOKEN"], "Cloudflare API token",
      "https://api.cloudflare.com/client/v4/user/tokens/verify", mod="cloudflare"),
    K("rubygems.api_key", fixed("rubygems_", HEXL, 48), ["GEM_HOST_API_KEY", "RUBYGEMS_API_KEY"], "RubyGems API key",
      "https://rubygems.org/api/v1/gems", "Authorization: <<S>>", "gem",
      extra=["---\n:rubygems_api_key: <<S>>"]),
    K("nuget.api_key", fixed("oy2", LO + DI, 43), ["NUGET_API_KEY"], "NuGet API key", hdr=None, mod="nuget",
      extra=["dotnet nuget push bin/Release/Acme.Core.2.3.1.nupkg --api-key <<S>> --source https://api.nuget.org/v3/index.json"]),
    K("pulumi.access_token", fixed("pul-", HEXL, 40), ["PULUMI_ACCESS_TOKEN"], "Pulumi token",
      "https://api.pulumi.com/api/user", "Authorization: token <<S>>", "pulumi"),
    K("supabase.access_token", fixed("sbp_", HEXL, 40), ["SUPABASE_ACCESS_TOKEN"], "Supabase access token",
      "https://api.supabase.com/v1/projects", mod="supabase"),
    K("planetscale.service_token", fixed("pscale_tkn_", URLS, 43), ["PLANETSCALE_SERVICE_TOKEN"], "PlanetScale token", hdr=None, mod="pscale"),
    K("mapbox.secret_token", g_mapbox, ["MAPBOX_SECRET_TOKEN", "MAPBOX_DOWNLOADS_TOKEN"], "Mapbox secret token", hdr=None, mod="mapbox",
      extra=["curl \"https://api.mapbox.com/tokens/v2/acme-maps?access_token=<<S>>\"",
             "machine api.mapbox.com\nlogin mapbox\npassword <<S>>"]),
    K("airtable.pat", lambda: "pat" + rs(AN, 14) + "." + rs(HEXL, 64), ["AIRTABLE_API_KEY", "AIRTABLE_TOKEN"], "Airtable token",
      "https://api.airtable.com/v0/appXYZ123/Tasks", mod="pyairtable"),
    K("age.secret_key", fixed("AGE-SECRET-KEY-1", BECH32U, 58), ["SOPS_AGE_KEY"], "age secret key", hdr=None, mod="sops",
      extra=["# created: 2024-06-02T11:04:19+02:00\n# public key: age1<<agepub>>\n<<S>>"]),
    K("figma.pat", fixed("figd_", URLS, 40), ["FIGMA_TOKEN"], "Figma token", "https://api.figma.com/v1/me", "X-Figma-Token: <<S>>", "figma"),
    K("contentful.pat", fixed("CFPAT-", URLS, 43), ["CONTENTFUL_MANAGEMENT_TOKEN"], "Contentful token",
      "https://api.contentful.com/spaces", mod="contentful"),
    K("square.access_token", fixed("EAAA", URLS, 60), ["SQUARE_ACCESS_TOKEN"], "Square access token",
      "https://connect.squareup.com/v2/locations", mod="square"),
    K("alibaba.access_key_id", fixed("LTAI", AN, 20), ["ALIBABA_CLOUD_ACCESS_KEY_ID", "ALICLOUD_ACCESS_KEY"], "Alibaba Cloud AccessKey ID",
      hdr=None, mod="alibabacloud"),
    K("okta.api_token", fixed("00", URLS, 40), ["OKTA_API_TOKEN", "OKTA_CLIENT_TOKEN"], "Okta API token",
      "https://acme.okta.com/api/v1/users?limit=25", "Authorization: SSWS <<S>>", "okta"),
    K("tailscale.auth_key", g_tailscale, ["TS_AUTHKEY", "TAILSCALE_AUTHKEY"], "Tailscale auth key", hdr=None, mod="tailscale",
      extra=["sudo tailscale up --authkey=<<S>> --advertise-tags=tag:ci"]),
]

PEM_KINDS = [("pem.rsa_private_key", g_pem_rsa), ("pem.ec_private_key", g_pem_ec),
             ("pem.openssh_private_key", g_pem_openssh), ("pem.pkcs8_private_key", g_pem_pkcs8)]
DB_KINDS = [("db.postgres_url", g_db("postgres")), ("db.mysql_url", g_db("mysql")),
            ("db.mongodb_url", g_db("mongodb")), ("db.redis_url", g_db("redis"))]

KINDS += [
    K("db.postgres_url", g_db("postgres"), ["DATABASE_URL", "POSTGRES_URL", "PG_DSN"], "Postgres URL", hdr=None, mod="sqlalchemy",
      extra=["engine = create_engine(\"<<S>>\", pool_pre_ping=True)",
             "const pool = new Pool({ connectionString: '<<S>>' });",
             "db, err := sql.Open(\"pgx\", \"<<S>>\")"]),
    K("db.mysql_url", g_db("mysql"), ["DATABASE_URL", "MYSQL_URL"], "MySQL URL", hdr=None, mod="sqlalchemy",
      extra=["SQLALCHEMY_DATABASE_URI = \"<<S>>\"", "<<ts>> [ERROR] Access denied while connecting to <<S>> (errno 1045)"]),
    K("db.mongodb_url", g_db("mongodb"), ["MONGODB_URI", "MONGO_URL"], "MongoDB URI", hdr=None, mod="pymongo",
      extra=["client = MongoClient(\"<<S>>\")", "mongosh \"<<S>>\" --eval 'db.stats()'"]),
    K("db.redis_url", g_db("redis"), ["REDIS_URL", "CACHE_URL"], "Redis URL", hdr=None, mod="redis",
      extra=["r = redis.from_url(\"<<S>>\", decode_responses=True)",
             "CELERY_BROKER_URL = \"<<S>>\""]),
]

# --------------------------------------------------------------------------- contexts

TEMPLATES = {
    "cfg": [
        "# <<svc>> — <<env>>\nNODE_ENV=production\nPORT=<<port>>\n<<VAR>>=<<S>>\nLOG_LEVEL=info\n",
        "$ export <<VAR>>=\"<<S>>\"\n$ <<cli>> deploy --env <<env>>\nError: authentication failed (401)",
        "<<svc>>:\n  endpoint: <<URL>>\n  timeout: 30s\n  <<var>>: \"<<S>>\"\n  retries: 3\n",
        "{\n  \"name\": \"<<svc>>\",\n  \"region\": \"<<region>>\",\n  \"<<camel>>\": \"<<S>>\",\n  \"debug\": false\n}",
        "version: \"3.9\"\nservices:\n  <<svc>>:\n    image: <<image>>\n    environment:\n      - <<VAR>>=<<S>>\n      - TZ=UTC\n    ports:\n      - \"<<port>>:<<port>>\"\n",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: <<svc>>-credentials\n  namespace: <<env>>\ntype: Opaque\nstringData:\n  <<var>>: <<S>>\n",
        "[<<svc>>]\nendpoint = <<URL>>\n<<var>> = <<S>>\nregion = <<region>>\n",
        "docker run --rm -e <<VAR>>=<<S>> -p <<port>>:<<port>> <<image>>",
        "resource \"<<svc>>_integration\" \"main\" {\n  name    = \"<<svc>>-<<env>>\"\n  <<var>> = \"<<S>>\"\n}\n",
        "name: nightly\non:\n  schedule:\n    - cron: '0 3 * * *'\njobs:\n  sync:\n    runs-on: ubuntu-latest\n    env:\n      <<VAR>>: <<S>>\n    steps:\n      - uses: actions/checkout@v4\n      - run: make sync\n",
        "ENV <<VAR>>=<<S>>\nWORKDIR /app\nCOPY . .\nCMD [\"python\", \"main.py\"]",
    ],
    "code": [
        "import os\nimport requests\n\n<<VAR>> = os.getenv(\"<<VAR>>\", \"<<S>>\")  # TODO: remove fallback before merge\n",
        "# settings.py\nDEBUG = False\nALLOWED_HOSTS = [\"<<host>>\"]\n<<VAR>> = \"<<S>>\"\n",
        "const <<camel>> = process.env.<<VAR>> || '<<S>>';\nmodule.exports = { <<camel>> };",
        "func newClient() *Client {\n\treturn &Client{\n\t\tBaseURL: \"<<URL>>\",\n\t\tToken:   \"<<S>>\",\n\t}\n}",
        "from <<mod>> import Client\n\nclient = Client(<<var>>=\"<<S>>\")\nprint(client.whoami())",
        "let config = Config {\n    endpoint: \"<<URL>>\".into(),\n    <<var>>: \"<<S>>\".into(),\n};",
    ],
    "talk": [
        "here's my key, why does it fail: <<S>>\nI keep getting 401 from <<URL>>",
        "hey can you check why my <<LABEL>> doesn't work? `<<S>>` — i copied it straight from the dashboard",
        "Estoy usando esta clave <<S>> y me da error 403 — ¿qué estoy haciendo mal?",
        "My config: <<VAR>>=<<S>> → the deploy still says unauthorized 🤔 any idea?",
        "### Steps to reproduce\n1. Set `<<VAR>>` to `<<S>>`\n2. Run `<<cli>> sync --env <<env>>`\n\n### Actual behaviour\n`401 Unauthorized`",
        "<<ts>> ERROR [<<svc>>] auth rejected for <<var>>=<<S>> status=401 request_id=<<uuid>>",
        "Traceback (most recent call last):\n  File \"/srv/<<svc>>/main.py\", line 42, in <module>\n    client.connect(<<var>>=\"<<S>>\")\n  File \"/usr/lib/python3.11/site-packages/<<mod>>/client.py\", line 118, in connect\n    raise AuthError(resp.status_code)\n<<mod>>.errors.AuthError: 401",
        "Könntest du kurz drüberschauen? Ich habe den <<LABEL>> so gesetzt:\n\n<<VAR>>=<<S>>\n\nAber der Build schlägt trotzdem fehl.",
        "<<ts>> level=debug msg=\"loaded settings\" <<var>>=\"<<S>>\" env=<<env>>",
    ],
    "hdr": [
        "curl -sS -X GET \"<<URL>>\" \\\n  -H \"<<HDR>>\" \\\n  -H \"Accept: application/json\"",
        "GET <<PATH>> HTTP/1.1\nHost: <<URLHOST>>\n<<HDR>>\nUser-Agent: python-requests/2.32.3\nAccept: */*",
        "resp = requests.get(\n    \"<<URL>>\",\n    headers={\"<<HDRNAME>>\": \"<<HDRVAL>>\"},\n    timeout=10,\n)\nresp.raise_for_status()",
        "const res = await fetch('<<URL>>', {\n  headers: { '<<HDRNAME>>': '<<HDRVAL>>' },\n});\nif (!res.ok) throw new Error(`HTTP ${res.status}`);",
        "<<ts>> WARN http.client outgoing request failed status=403 url=<<URL>> headers={'<<HDRNAME>>': '<<HDRVAL>>', 'Accept': 'application/json'}",
        "why does this return 403?\n\n```\ncurl <<URL>> -H '<<HDR>>'\n```",
    ],
}

PEM_TEMPLATES = [
    ("Here is the deploy key from the server, is it in the right format?\n\n<<S>>\n", "raw"),
    ("$ cat ~/.ssh/id_deploy\n<<S>>\n$ ssh -i ~/.ssh/id_deploy git@github.com\ngit@github.com: Permission denied (publickey).", "raw"),
    ("{\n  \"type\": \"service_account\",\n  \"project_id\": \"acme-prod-4821\",\n  \"private_key_id\": \"<<hex40>>\",\n  \"private_key\": \"<<S>>\\n\",\n  \"client_email\": \"ci-deployer@acme-prod-4821.iam.gserviceaccount.com\"\n}", "json"),
    ("SIGNING_KEY = \"\"\"<<S>>\n\"\"\"\n\ndef sign(payload: bytes) -> bytes:\n    return _sign(SIGNING_KEY, payload)", "raw"),
    ("JWT_PRIVATE_KEY=\"<<S>>\"\nJWT_ISSUER=https://auth.acme.io\n", "raw"),
    ("apiVersion: v1\nkind: Secret\nmetadata:\n  name: ingress-tls\ntype: kubernetes.io/tls\nstringData:\n  tls.key: |\n    <<S>>\n", "indent4"),
    ("resource \"tls_locally_signed_cert\" \"app\" {\n  ca_private_key_pem = <<EOT\n<<S>>\nEOT\n}", "raw"),
    ("const privateKey = `<<S>>`;\nconst token = jwt.sign({ sub: user.id }, privateKey, { algorithm: 'RS256' });", "raw"),
    ("var signingKey = []byte(`<<S>>`)", "raw"),
    ("ssh_keys:\n  deploy:\n    private: |\n      <<S>>\n", "indent6"),
    ("Pls help, ansible says 'invalid format' for this key:\n<<S>>", "raw"),
]

SVCS = ["billing", "orders", "notifier", "reporting", "webhooks", "search", "ingest", "payments", "crm-sync", "auth-proxy"]
ENVS = ["prod", "production", "staging", "dev", "qa"]
REGIONS = ["us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2", "us-west-2"]
IMAGES = ["ghcr.io/acme-corp/api:2.14.1", "node:20-alpine", "python:3.12-slim", "acme/worker:latest", "registry.acme.io/billing:9f3c2a1"]
CLIS = ["acme", "./scripts/deploy.sh", "make", "npx release-it", "poetry run app"]


def rtimestamp() -> str:
    return (f"2024-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}T{R.randint(0, 23):02d}:"
            f"{R.randint(0, 59):02d}:{R.randint(0, 59):02d}.{R.randint(0, 999):03d}Z")


def ruuid() -> str:
    h = rs(HEXL, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{pick('89ab')}{h[17:20]}-{h[20:]}"


def camel(var: str) -> str:
    parts = var.lower().split("_")
    return parts[0] + "".join(p.title() for p in parts[1:])


def fill(tmpl: str, ctx: dict) -> tuple[str, str]:
    for _ in range(3):
        for k, v in ctx.items():
            tmpl = tmpl.replace(f"<<{k}>>", v)
    parts = tmpl.split("<<S>>")
    assert len(parts) == 2, tmpl
    return parts[0], parts[1]


def make_ctx(spec: dict) -> dict:
    var = pick(spec["vars"])
    url = spec["url"]
    host = url.split("/")[2]
    ctx = {"VAR": var, "var": var.lower(), "camel": camel(var), "LABEL": spec["label"], "URL": url,
           "URLHOST": host, "PATH": "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/",
           "host": pick(["api.acme.io", "app.acme.io", "localhost"]), "svc": pick(SVCS), "port": str(pick([3000, 8000, 8080, 5000])),
           "env": pick(ENVS), "ts": rtimestamp(), "image": pick(IMAGES), "region": pick(REGIONS), "mod": spec["mod"],
           "cli": pick(CLIS), "uuid": ruuid(), "num": str(R.randint(10**11, 10**12 - 1)), "lower": rs(LO + DI, 32),
           "hex40": rs(HEXL, 40), "agepub": rs(BECH32U.lower(), 58)}
    if spec.get("hdr"):
        name, val = spec["hdr"].split(": ", 1)
        ctx.update(HDR=spec["hdr"], HDRNAME=name, HDRVAL=val)
    return ctx


def utf8_span(before: str, value: str) -> dict:
    start = len(before.encode())
    return {"start": start, "end": start + len(value.encode()), "value": value}


def positives() -> list[dict]:
    rows = []
    for spec in KINDS:
        pool = list(spec["extra"])
        generic = [t for g in spec["groups"] for t in TEMPLATES[g]]
        R.shuffle(generic)
        chosen = pool + generic[: max(0, PER_KIND - len(pool))]
        R.shuffle(chosen)
        for n, tmpl in enumerate(chosen[:PER_KIND], 1):
            g = spec["gen"]()
            frag, s0, s1 = (g, 0, len(g)) if isinstance(g, str) else g
            before, after = fill(tmpl, make_ctx(spec))
            text = before + frag + after
            rows.append(row(spec["kind"], n, "secret", text, [utf8_span(before + frag[:s0], frag[s0:s1])]))
    for kind, gen in PEM_KINDS:
        tmpls = PEM_TEMPLATES[:]
        R.shuffle(tmpls)
        for n, (tmpl, mode) in enumerate(tmpls[:PER_KIND], 1):
            key = gen()
            if mode == "json":
                key = key.replace("\n", "\\n")
            elif mode.startswith("indent"):
                key = key.replace("\n", "\n" + " " * int(mode[6:]))
            ctx = {"hex40": rs(HEXL, 40)}
            before, after = fill(tmpl, ctx)
            rows.append(row(kind, n, "secret", before + key + after, [utf8_span(before, key)]))
    return rows


def row(kind: str, n: int, label: str, text: str, spans: list) -> dict:
    return {"id": f"secrets-generated-{kind}-{n}", "text": text, "label": label, "kind": kind,
            "spans": spans, "source": SOURCE, "split": "tune" if n % 2 else "test"}


# --------------------------------------------------------------------------- negatives

MSGS = ["fix: handle empty cart in checkout", "chore(deps): bump axios from 1.6.8 to 1.7.2", "feat: add retry to webhook sender",
        "refactor: split billing module", "docs: update README install steps", "test: cover token refresh path",
        "Merge pull request #482 from acme-corp/fix/timezone", "ci: cache pip downloads", "perf: batch inserts in ingest"]
ORGREPO = ["acme-corp/payments-service", "tollgate/tollgate", "kubernetes/kubernetes", "psf/requests", "vercel/next.js", "rust-lang/cargo"]
NAMES = ["Dana Kim", "Omar Haddad", "Li Wei", "Sofia Rossi", "Karin Svensson", "Tomás García"]


def sha(n=40):
    return rs(HEXL, n)


def neg_git_sha():
    s = sha()
    return pick([
        lambda: "$ git log --oneline -5\n" + "\n".join(f"{sha(7)} {pick(MSGS)}" for _ in range(5)),
        lambda: f"Fixed in commit {s}, please pull main and rebuild.",
        lambda: f"See https://github.com/{pick(ORGREPO)}/commit/{s} for the regression.",
        lambda: f"HEAD is now at {s[:7]} {pick(MSGS)}",
        lambda: f"$ git cherry-pick {s}\nerror: could not apply {s[:7]}... {pick(MSGS)}\nhint: after resolving the conflicts, mark the corrected paths",
        lambda: f"require github.com/acme-corp/kit v0.0.0-2024{R.randint(1, 12):02d}{R.randint(10, 28)}093512-{s[:12]}",
        lambda: f"      - uses: actions/checkout@{s} # v4.1.7\n      - uses: actions/setup-node@{sha()} # v4.0.3",
        lambda: f"commit {s}\nAuthor: {pick(NAMES)} <dev@acme.io>\nDate:   Tue Mar 12 10:22:31 2024 +0100\n\n    {pick(MSGS)}",
        lambda: f"$ git rev-parse HEAD\n{s}",
        lambda: f"Bisecting: 12 revisions left to test after this (roughly 4 steps)\n[{s}] {pick(MSGS)}",
    ])()


def neg_sha256():
    h = sha(64)
    return pick([
        lambda: f"$ sha256sum tollgate-{R.randint(0, 3)}.{R.randint(0, 20)}.0-x86_64-linux.tar.gz\n{h}  tollgate-x86_64-linux.tar.gz",
        lambda: f"image: ghcr.io/{pick(ORGREPO)}@sha256:{h}",
        lambda: f"requests==2.32.3 \\\n    --hash=sha256:{h} \\\n    --hash=sha256:{sha(64)}",
        lambda: f"[[package]]\nname = \"serde\"\nversion = \"1.0.{R.randint(100, 210)}\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{h}\"",
        lambda: f"SHA256 (openssl-3.3.{R.randint(0, 2)}.tar.gz) = {h}",
        lambda: f"github.com/google/uuid v1.6.0 h1:{b64(rbytes(32))}\ngithub.com/google/uuid v1.6.0/go.mod h1:{b64(rbytes(32))}",
        lambda: f"provider \"registry.terraform.io/hashicorp/aws\" {{\n  version = \"5.62.0\"\n  hashes = [\n    \"h1:{b64(rbytes(32))}\",\n    \"zh:{h}\",\n  ]\n}}",
        lambda: f"Step 4/9 : RUN pip install -r requirements.txt\n ---> Running in {sha(12)}\n ---> sha256:{h}",
        lambda: f"Verify the download: the expected SHA-256 is {h.upper()}.",
    ])()


def neg_uuid():
    u = ruuid()
    return pick([
        lambda: f"{rtimestamp()} INFO request completed request_id={u} status=200 duration_ms={R.randint(3, 900)}",
        lambda: f"metadata:\n  name: api-7d9f8b6c5d-x2kqp\n  namespace: default\n  uid: {u}\n  resourceVersion: \"{R.randint(10**6, 10**8)}\"",
        lambda: f"AZURE_TENANT_ID={u}\nAZURE_SUBSCRIPTION_ID={ruuid()}\nAZURE_CLIENT_ID={ruuid()}\nAZURE_CLIENT_SECRET=${{AZURE_CLIENT_SECRET}}",
        lambda: f"x-amzn-RequestId: {u}\nContent-Type: application/x-amz-json-1.1",
        lambda: f"Your support ticket {u} has been created. Reference it in any follow-up.",
        lambda: f"{{\"id\": \"{u}\", \"type\": \"invoice.paid\", \"created_at\": \"{rtimestamp()}\"}}",
        lambda: f"kms_key_id = \"arn:aws:kms:{pick(REGIONS)}:{R.randint(10**11, 10**12 - 1)}:key/{u}\"",
        lambda: f"INSERT INTO sessions (id, user_id) VALUES ('{u}', {R.randint(1, 99999)});",
    ])()


ICO_HDR = b"\x00\x00\x01\x00"
PLAIN_PAYLOADS = [b"hello world", b'{"name":"billing","replicas":3}', b"Build 2024.09.1 passed"]


def png_bytes(n):
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + struct.pack(">II", R.randint(8, 64), R.randint(8, 64)) + b"\x08\x06\x00\x00\x00" + rbytes(n)


def neg_data_uri():
    return pick([
        lambda: f"<img alt=\"logo\" src=\"data:image/png;base64,{b64(png_bytes(R.randint(90, 300)))}\" />",
        lambda: f".icon-check {{\n  background-image: url(\"data:image/png;base64,{b64(png_bytes(R.randint(60, 200)))}\");\n}}",
        lambda: f"![chart](data:image/gif;base64,{b64(b'GIF89a' + rbytes(R.randint(60, 200)))})",
        lambda: f"const placeholder = 'data:image/jpeg;base64,{b64(bytes.fromhex('ffd8ffe000104a46494600') + rbytes(R.randint(80, 250)))}';",
        lambda: f"<link rel=\"icon\" href=\"data:image/x-icon;base64,{b64(ICO_HDR + rbytes(R.randint(60, 160)))}\">",
        lambda: f"@font-face {{ font-family: 'Icons'; src: url(data:font/woff2;base64,{b64(b'wOF2' + rbytes(R.randint(100, 260)))}) format('woff2'); }}",
    ])()


def neg_integrity():
    i512 = "sha512-" + b64(rbytes(64))
    return pick([
        lambda: f"    \"node_modules/lodash\": {{\n      \"version\": \"4.17.21\",\n      \"resolved\": \"https://registry.npmjs.org/lodash/-/lodash-4.17.21.tgz\",\n      \"integrity\": \"{i512}\"\n    }},",
        lambda: f"\"@babel/core@^7.24.0\":\n  version \"7.24.{R.randint(0, 9)}\"\n  resolved \"https://registry.yarnpkg.com/@babel/core/-/core-7.24.5.tgz#{sha()}\"\n  integrity {i512}",
        lambda: f"<script src=\"https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/js/bootstrap.bundle.min.js\" integrity=\"sha384-{b64(rbytes(48))}\" crossorigin=\"anonymous\"></script>",
        lambda: f"  /react-dom@18.3.1(react@18.3.1):\n    resolution: {{integrity: {i512}}}",
        lambda: f"npm ERR! code EINTEGRITY\nnpm ERR! sha512-{b64(rbytes(64))} integrity checksum failed when using sha512: wanted {i512} but got sha512-{b64(rbytes(64))}.",
    ])()


PLACEHOLDERS = [
    "OPENAI_API_KEY=sk-...", "OPENAI_API_KEY=<your-openai-key>", "export OPENAI_API_KEY=\"sk-proj-XXXXXXXXXXXXXXXXXXXXXXXX\"",
    "STRIPE_SECRET_KEY=sk_live_xxxxxxxxxxxxxxxxxxxxxxxx", "GITHUB_TOKEN=ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "api_key: YOUR_API_KEY", "password: changeme", "token: <token>", "Authorization: Bearer <ACCESS_TOKEN>",
    "curl -H \"Authorization: Bearer $TOKEN\" https://api.github.com/user", "DATABASE_URL=postgres://user:password@localhost:5432/mydb",
    "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "SECRET_KEY=replace-me",
    "API_KEY=************", "HF_TOKEN=hf_xxx", "ANTHROPIC_API_KEY=sk-ant-api03-...", "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
    "\"password\": \"\"", "password: null", "TOKEN=TODO", "SLACK_BOT_TOKEN=xoxb-your-token", "client_secret = \"<CLIENT_SECRET>\"",
    "api_key = os.environ[\"OPENAI_API_KEY\"]", "headers = {\"Authorization\": f\"Bearer {token}\"}", "STRIPE_WEBHOOK_SECRET=whsec_...",
    "NPM_TOKEN=npm_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "password = os.environ.get(\"TEST_PASSWORD\", \"\")",
    "GOOGLE_API_KEY=AIza...your-key...", "db_password: \"{{ vault_db_password }}\"", "SENDGRID_API_KEY=SG.xxxxxx.yyyyyy",
    "secret: ${JWT_SECRET}", "token = \"dummy-token\"", "ADMIN_PASSWORD=<set-me>", "VAULT_TOKEN=hvs.XXXXXXXX",
]
PLACEHOLDER_WRAP = [
    "Copy `.env.example` to `.env` and fill in your values:\n\n```\n{}\n```",
    "# .env.example — never commit real values\n{}\n",
    "In the README it says to set\n{}\nbut where do I get the real value from?",
    "```yaml\n# config.sample.yaml\n{}\n```",
    "{}",
]


def neg_placeholder():
    items = R.sample(PLACEHOLDERS, R.randint(1, 3))
    return pick(PLACEHOLDER_WRAP).format("\n".join(items))


def neg_env_reference():
    return pick([
        lambda: "env:\n  NPM_TOKEN: ${{ secrets.NPM_TOKEN }}\n  GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}",
        lambda: "const stripe = new Stripe(process.env.STRIPE_SECRET_KEY, { apiVersion: '2024-06-20' });",
        lambda: "client = OpenAI(api_key=os.environ[\"OPENAI_API_KEY\"])",
        lambda: "export VAULT_TOKEN=$(vault login -token-only -method=oidc)\nexport DB_PASS=$(vault kv get -field=password secret/app/db)",
        lambda: "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        name: db-credentials\n        key: password",
        lambda: "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env}",
        lambda: "resource \"aws_db_instance\" \"main\" {\n  username = \"app\"\n  password = var.db_password\n}\nvariable \"db_password\" {\n  type      = string\n  sensitive = true\n}",
        lambda: "apiKey: {{ .Values.datadog.apiKey | quote }}",
        lambda: "OPENAI_API_KEY=op://Engineering/OpenAI/credential\nSTRIPE_KEY=op://Engineering/Stripe/secret_key",
        lambda: "production:\n  secret_key_base: <%= ENV[\"SECRET_KEY_BASE\"] %>",
        lambda: "aws secretsmanager get-secret-value --secret-id prod/billing/db --query SecretString --output text",
        lambda: "token := os.Getenv(\"GITHUB_TOKEN\")\nif token == \"\" {\n\tlog.Fatal(\"GITHUB_TOKEN not set\")\n}",
        lambda: "let key = std::env::var(\"ANTHROPIC_API_KEY\").expect(\"ANTHROPIC_API_KEY must be set\");",
        lambda: "@Value(\"${jwt.secret}\")\nprivate String jwtSecret;",
        lambda: "password: !Ref DbPassword\nMasterUserPassword: '{{resolve:secretsmanager:prod/db:SecretString:password}}'",
        lambda: "ARG NPM_TOKEN\nRUN --mount=type=secret,id=npm_token NPM_TOKEN=$(cat /run/secrets/npm_token) npm ci",
    ])()


def ssh_pub(kind):
    if kind == "ed25519":
        return "ssh-ed25519 " + b64(sshstr(b"ssh-ed25519") + sshstr(rbytes(32)))
    if kind == "rsa":
        return "ssh-rsa " + b64(sshstr(b"ssh-rsa") + sshstr(b"\x01\x00\x01") + sshstr(b"\x00" + rbytes(384)))
    return "ecdsa-sha2-nistp256 " + b64(sshstr(b"ecdsa-sha2-nistp256") + sshstr(b"nistp256") + sshstr(b"\x04" + rbytes(64)))


def neg_public_key():
    who = pick(["dana@laptop", "deploy@ci", "omar@workstation", "li.wei@acme.io"])
    spki = (b"\x30\x82\x01\x22\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00\x03\x82\x01\x0f\x00"
            b"\x30\x82\x01\x0a\x02\x82\x01\x01\x00" + rbytes(256) + b"\x02\x03\x01\x00\x01")
    cert = b"\x30\x82\x03\x5a\x30\x82\x02\x42\xa0\x03\x02\x01\x02\x02\x14" + rbytes(R.randint(700, 850))
    return pick([
        lambda: f"Add this to ~/.ssh/authorized_keys on the bastion:\n{ssh_pub('ed25519')} {who}",
        lambda: f"$ cat ~/.ssh/id_ed25519.pub\n{ssh_pub('ed25519')} {who}",
        lambda: f"{ssh_pub('rsa')} {who}",
        lambda: f"github.com {ssh_pub('ecdsa')}\ngitlab.com {ssh_pub('ed25519')}",
        lambda: f"users:\n  - name: deploy\n    ssh_authorized_keys:\n      - {ssh_pub('ed25519')} {who}",
        lambda: "Public key for verifying webhook signatures:\n" + pem("PUBLIC KEY", spki),
        lambda: pem("CERTIFICATE", cert) + "\n",
        lambda: "ca.crt: |\n  " + pem("CERTIFICATE", cert).replace("\n", "\n  "),
        lambda: json.dumps({"keys": [{"kty": "RSA", "use": "sig", "kid": rs(URLS, 16), "alg": "RS256", "n": b64u(rbytes(256)), "e": "AQAB"}]}),
        lambda: f"# public key: age1{rs(''.join(sorted(set(BECH32U.lower()))), 58)}\nsops --encrypt --age age1{rs(''.join(sorted(set(BECH32U.lower()))), 58)} secrets.yaml > secrets.enc.yaml",
        lambda: f"gpg: key {rs(HEXU, 16)}: public key \"{pick(NAMES)} <dev@acme.io>\" imported\nFingerprint: {' '.join(wrap(rs(HEXU, 40), 4))}",
        lambda: f"resource \"aws_key_pair\" \"deployer\" {{\n  key_name   = \"deployer-key\"\n  public_key = \"{ssh_pub('ed25519')} {who}\"\n}}",
    ])()


def neg_object_ids():
    return pick([
        lambda: f"Payment {pick(['pi_', 'ch_', 'py_'])}{rs(AN, 24)} for customer cus_{rs(AN, 14)} succeeded (amount 49.00 EUR).",
        lambda: json.dumps({"id": "sub_" + rs(AN, 24), "object": "subscription", "customer": "cus_" + rs(AN, 14),
                            "items": {"data": [{"price": {"id": "price_" + rs(AN, 24), "product": "prod_" + rs(AN, 14)}}]}}, indent=2),
        lambda: f"Stripe event evt_{rs(AN, 24)} (invoice.payment_failed) retried 3 times; Request-Id: req_{rs(AN, 14)}",
        lambda: f"Order #ORD-2024-{R.randint(100000, 999999)} shipped. Tracking: 1Z{rs(UP + DI, 16)}",
        lambda: f"traceparent: 00-{sha(32)}-{sha(16)}-01",
        lambda: f"X-Amzn-Trace-Id: Root=1-{sha(8)}-{sha(24)};Parent={sha(16)};Sampled=1",
        lambda: f"Twilio message {'SM' + sha(32)} queued for account {'AC' + sha(32)}",
        lambda: f"Sentry event {sha(32)} grouped into issue WEB-{R.randint(100, 9999)}",
        lambda: f"db.orders.find({{ _id: ObjectId(\"{sha(24)}\") }})",
        lambda: f"CF-Ray: {sha(16)}-{pick(['FRA', 'AMS', 'SJC', 'LHR'])}",
        lambda: f"Slack channel C{rs(UP + DI, 10)} / user U{rs(UP + DI, 10)} / message ts {R.randint(1700000000, 1740000000)}.{R.randint(100000, 999999)}",
        lambda: f"https://docs.google.com/spreadsheets/d/1{rs(URLS, 43)}/edit#gid=0",
        lambda: f"https://www.youtube.com/watch?v={rs(URLS, 11)}&t=42s",
        lambda: f"https://www.notion.so/acme/Q3-Roadmap-{sha(32)}",
        lambda: f"Datadog trace_id={R.randint(10**18, 9 * 10**18)} span_id={R.randint(10**18, 9 * 10**18)}",
        lambda: f"Shopify webhook for gid://shopify/Order/{R.randint(10**12, 10**13)} (X-Shopify-Webhook-Id: {ruuid()})",
    ])()


def neg_aws_resource():
    acct = str(R.randint(10**11, 10**12 - 1))
    reg = pick(REGIONS)
    return pick([
        lambda: f"arn:aws:iam::{acct}:role/{pick(['ci-deployer', 'lambda-exec', 'ReadOnlyAccess'])}",
        lambda: f"aws s3 cp s3://acme-{pick(['logs', 'artifacts', 'backups'])}-{reg}/2024/09/{sha(8)}.parquet .",
        lambda: f"https://acme-public-assets.s3.{reg}.amazonaws.com/img/{sha(16)}.webp",
        lambda: f"Secret ARN: arn:aws:secretsmanager:{reg}:{acct}:secret:prod/billing/db-{rs(AN, 6)}",
        lambda: f"Instance i-0{sha(16)} in subnet subnet-0{sha(16)} (sg-0{sha(16)}, vpc-0{sha(16)}) is unhealthy.",
        lambda: f"{acct}.dkr.ecr.{reg}.amazonaws.com/api:sha-{sha(7)}",
        lambda: f"CloudFront distribution E{rs(UP + DI, 13)} invalidation I{rs(UP + DI, 13)} completed.",
        lambda: f"arn:aws:cloudformation:{reg}:{acct}:stack/api-prod/{ruuid()}",
        lambda: f"ami-0{sha(16)} (Amazon Linux 2023) launched in {reg}",
        lambda: f"{{\n  \"Effect\": \"Allow\",\n  \"Action\": [\"s3:GetObject\"],\n  \"Resource\": \"arn:aws:s3:::acme-artifacts/*\",\n  \"Principal\": {{\"AWS\": \"arn:aws:iam::{acct}:root\"}}\n}}",
        lambda: f"arn:aws:lambda:{reg}:{acct}:function:thumbnailer:{R.randint(1, 40)}",
    ])()


def neg_safe_code():
    return pick([
        lambda: "password = input(\"Password: \")\nif not check(password):\n    print(\"wrong password\")",
        lambda: "import getpass\npw = getpass.getpass(\"DB password: \")\nconn = connect(user=\"app\", password=pw)",
        lambda: "token = get_token()\nheaders = {\"Authorization\": f\"Bearer {token}\"}",
        lambda: "api_key = os.getenv(\"API_KEY\")\nif api_key is None:\n    raise RuntimeError(\"API_KEY is not configured\")",
        lambda: "const { data: { session } } = await supabase.auth.getSession();\nconst accessToken = session?.access_token;",
        lambda: "hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=12))",
        lambda: "if (password !== confirmPassword) {\n  setError('Passwords do not match');\n}",
        lambda: "CREATE TABLE users (\n  id BIGSERIAL PRIMARY KEY,\n  email TEXT UNIQUE NOT NULL,\n  password_hash TEXT NOT NULL,\n  api_token_last4 CHAR(4)\n);",
        lambda: "<label for=\"pw\">Password</label>\n<input type=\"password\" id=\"pw\" name=\"password\" autocomplete=\"current-password\" required>",
        lambda: "token = request.headers.get(\"Authorization\", \"\").removeprefix(\"Bearer \")\nclaims = jwt.decode(token, key=public_key, algorithms=[\"RS256\"])",
        lambda: "secret = secrets.token_urlsafe(32)\nstore_secret(user_id, secret)",
        lambda: "const key = crypto.randomBytes(32).toString('hex');",
        lambda: "def rotate_api_key(user):\n    user.api_key = generate_key()\n    user.save(update_fields=[\"api_key\"])",
        lambda: "keyring.set_password(\"acme-cli\", username, password)\ntoken = keyring.get_password(\"acme-cli\", username)",
        lambda: "MIN_PASSWORD_LENGTH = 12\nPASSWORD_REGEX = r\"^(?=.*[A-Z])(?=.*\\d)(?=.*[^\\w]).{12,}$\"",
        lambda: "func (c *Client) SetToken(token string) {\n\tc.mu.Lock()\n\tc.token = token\n\tc.mu.Unlock()\n}",
        lambda: "aws configure set aws_access_key_id \"$AWS_ACCESS_KEY_ID\"\naws configure set aws_secret_access_key \"$AWS_SECRET_ACCESS_KEY\"",
    ])()


def neg_minified_js():
    ids = [rs(LO, 1) for _ in range(6)]
    chunks = ",".join(f"{R.randint(10, 999)}:\"{sha(8)}\"" for _ in range(R.randint(4, 9)))
    return pick([
        lambda: f"!function(e){{var t={{}};function n(r){{if(t[r])return t[r].exports;var o=t[r]={{i:r,l:!1,exports:{{}}}};return e[r].call(o.exports,o,o.exports,n),o.l=!0,o.exports}}n.p=\"/static/\",n.u=function(e){{return\"js/\"+e+\".\"+{{{chunks}}}[e]+\".chunk.js\"}}}}([]);",
        lambda: f"var {ids[0]}=\"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\";function {ids[1]}({ids[2]}){{for(var {ids[3]}=\"\",{ids[4]}=0;{ids[4]}<{ids[2]}.length;{ids[4]}+=3){ids[3]}+={ids[0]}.charAt({ids[2]}.charCodeAt({ids[4]})>>2);return {ids[3]}}}",
        lambda: f"(self.webpackChunk_N_E=self.webpackChunk_N_E||[]).push([[{R.randint(100, 999)}],{{{R.randint(1000, 99999)}:function(e,t,n){{\"use strict\";n.d(t,{{Z:function(){{return o}}}});var r=n({R.randint(1000, 99999)}),o=function(e){{return(0,r.jsx)(\"div\",{{className:\"{rs(LO, 6)}_{rs(URLS, 5)}\"}})}}}}}}]);\n//# sourceMappingURL={sha(20)}.js.map",
        lambda: f"const {ids[0]}=[0x{sha(8)},0x{sha(8)},0x{sha(8)},0x{sha(8)}];function {ids[1]}({ids[2]},{ids[3]}){{return({ids[2]}<<{ids[3]}|{ids[2]}>>>32-{ids[3]})>>>0}}",
        lambda: f"<script src=\"/_next/static/chunks/pages/_app-{sha(16)}.js\" defer></script><script src=\"/_next/static/{rs(URLS, 21)}/_buildManifest.js\" defer></script>",
        lambda: f"e.exports={{cssHash:\"{rs(URLS, 12)}\",locals:{{root:\"{rs(LO, 5)}-{rs(URLS, 6)}\",button:\"{rs(LO, 6)}-{rs(URLS, 6)}\"}}}}",
    ])()


def neg_docs():
    return pick([
        "GitHub classic personal access tokens start with `ghp_` followed by 36 base62 characters; the last six are a CRC32 checksum.",
        "AWS access key IDs begin with AKIA (long-term) or ASIA (temporary STS credentials). Never paste the secret access key into tickets.",
        "Stripe secret keys start with `sk_live_` (or `sk_test_` in test mode). Restricted keys start with `rk_`. Publishable keys are safe in the browser.",
        "A Slack bot token looks like `xoxb-` followed by numbers and letters. Rotate it from the app's OAuth & Permissions page.",
        "To detect leaked tokens we match patterns such as `ghp_[A-Za-z0-9]{36}`, `glpat-[A-Za-z0-9_-]{20}` and `AKIA[A-Z0-9]{16}`.",
        "[[rules]]\nid = \"stripe-secret\"\nregex = '''sk_live_[0-9a-zA-Z]{24,99}'''\nkeywords = [\"sk_live_\"]",
        "OpenAI project keys have the prefix sk-proj-. Anthropic keys start with sk-ant-api03- and admin keys with sk-ant-admin01-.",
        "JWTs consist of three base64url parts separated by dots: header.payload.signature. The header usually starts with eyJ.",
        "PEM private keys are wrapped in `-----BEGIN PRIVATE KEY-----` / `-----END PRIVATE KEY-----` lines; keep them out of version control.",
        "Google API keys are 39 characters long and start with AIza. Restrict each key to the APIs and referrers that need it.",
        "npm automation tokens start with npm_ and PyPI API tokens with pypi-. Use trusted publishing instead of long-lived tokens where possible.",
        "HashiCorp Vault service tokens are prefixed with hvs., batch tokens with hvb. and recovery tokens with hvr.",
        "Hugging Face user access tokens begin with hf_. Fine-grained tokens can be scoped to specific repos.",
        "Azure storage account keys are 512-bit values shown base64-encoded (88 characters) in the portal under Access keys.",
        "A Telegram bot token has the form <bot_id>:<secret> — you receive it from @BotFather.",
        "Docker Hub personal access tokens begin with dckr_pat_. Use them with `docker login --password-stdin`.",
        "How do I rotate a leaked GitLab token? Revoke it in User Settings → Access Tokens and create a new glpat- token.",
        "Twilio API key SIDs start with SK and account SIDs with AC; the API key secret is shown only once at creation.",
        "def looks_like_aws_key(s: str) -> bool:\n    return bool(re.fullmatch(r\"(AKIA|ASIA)[A-Z2-7]{16}\", s))",
        "SendGrid API keys have the format SG.<22 chars>.<43 chars>. Grant only the Mail Send permission.",
        "Regex used by the pre-commit hook: `xox[baprs]-[0-9A-Za-z-]{10,72}`",
        "Terraform Cloud user tokens contain `.atlasv1.` in the middle; store them in credentials.tfrc.json.",
    ])


def neg_redacted():
    return pick([
        lambda: f"{rtimestamp()} INFO using OpenAI key sk-proj-****{rs(AN, 4)} for org org-{rs(AN, 24)}",
        lambda: "GITHUB_TOKEN=ghp_************************************",
        lambda: f"{rtimestamp()} DEBUG outgoing headers={{'Authorization': 'Bearer [REDACTED]', 'X-Request-Id': '{ruuid()}'}}",
        lambda: "aws_access_key_id = AKIA****************\naws_secret_access_key = ****************************************",
        lambda: "SLACK_BOT_TOKEN=xoxb-***\nSTRIPE_SECRET_KEY=sk_live_...REDACTED...",
        lambda: f"Token: •••••••••••••••••••{rs(AN, 4)} (last used 3 days ago)",
        lambda: "password=<hidden> user=app host=db.internal sslmode=require",
        lambda: "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.<redacted>.<redacted>",
        lambda: "postgres://app:*****@db.internal:5432/orders",
        lambda: f"Key ending in …{rs(AN, 4)} was revoked by {pick(NAMES)} on 2024-08-12.",
        lambda: "DATABASE_URL=postgres://app:%3Credacted%3E@db:5432/app",
    ])()


def neg_db_nopass():
    return pick([
        "DATABASE_URL=postgres://localhost:5432/app_dev", "DATABASE_URL=postgres://app@db:5432/app?sslmode=disable",
        "DATABASE_URL=postgresql://app:${PGPASSWORD}@db.internal:5432/orders", "mysql://root@127.0.0.1:3306/test",
        "REDIS_URL=redis://redis:6379/0", "MONGO_URL=mongodb://mongo-0.mongo:27017,mongo-1.mongo:27017/?replicaSet=rs0",
        "jdbc:postgresql://db.internal:5432/billing?user=app&ssl=true", "SQLALCHEMY_DATABASE_URI = \"sqlite:///./app.db\"",
        "engine = create_engine(f\"postgresql+psycopg://{user}:{password}@{host}/{db}\")",
        "CELERY_BROKER_URL=amqp://guest@rabbitmq:5672//", "dsn := fmt.Sprintf(\"host=%s user=%s password=%s dbname=%s\", h, u, p, d)",
        "psql -h db.internal -U app -d orders -W", "spring.datasource.url=jdbc:mysql://mysql:3306/shop\nspring.datasource.password=${DB_PASSWORD}",
        "ELASTICSEARCH_URL=https://es.internal:9200", "KAFKA_BOOTSTRAP_SERVERS=b-1.msk.acme.io:9094,b-2.msk.acme.io:9094",
    ])


def neg_crypto_addr():
    return pick([
        lambda: f"Send the refund to 0x{sha(40)} (Ethereum mainnet).",
        lambda: f"Transaction hash: 0x{sha(64)}\nhttps://etherscan.io/tx/0x{sha(64)}",
        lambda: f"bc1q{rs('qpzry9x8gf2tvdw0s3jn54khce6mua7l', 38)}",
        lambda: f"ipfs://Qm{rs(B58, 44)}",
        lambda: f"https://ipfs.io/ipfs/bafybei{rs('abcdefghijklmnopqrstuvwxyz234567', 52)}",
        lambda: f"contract address: 0x{rs(HEXL + 'ABCDEF', 40)} — verified on Etherscan",
        lambda: f"block {R.randint(18_000_000, 21_000_000)} hash 0x{sha(64)} mined",
    ])()


def neg_containers():
    return pick([
        lambda: "CONTAINER ID   IMAGE                 STATUS         NAMES\n" + "\n".join(
            f"{sha(12)}   {pick(IMAGES):<21} Up {R.randint(2, 59)} minutes   {pick(SVCS)}-{R.randint(1, 3)}" for _ in range(3)),
        lambda: f"$ docker inspect --format '{{{{.Id}}}}' api\n{sha(64)}",
        lambda: "NAME                        READY   STATUS    RESTARTS   AGE\n" + "\n".join(
            f"{pick(SVCS)}-{sha(10)}-{rs(LO + DI, 5)}   1/1     Running   0          {R.randint(1, 30)}d" for _ in range(3)),
        lambda: f"containerID: containerd://{sha(64)}\nimageID: docker.io/library/nginx@sha256:{sha(64)}",
        lambda: f"Successfully built {sha(12)}\nSuccessfully tagged acme/api:latest",
        lambda: f"runner: {pick(SVCS)}-{rs(LO + DI, 8)}-{rs(LO + DI, 5)} job {R.randint(10**9, 10**10)} (pipeline #{R.randint(10**5, 10**6)})",
    ])()


def neg_build_env():
    lines = [f"NODE_ENV=production", f"BUILD_ID={R.randint(1000, 99999)}", f"GIT_COMMIT={sha()}", f"SENTRY_RELEASE=web@{sha(12)}",
             f"AWS_REGION={pick(REGIONS)}", f"AZURE_TENANT_ID={ruuid()}", f"GOOGLE_CLOUD_PROJECT=acme-prod-{R.randint(1000, 9999)}",
             "NEXT_PUBLIC_API_URL=https://api.acme.io", f"CACHE_KEY=deps-{sha(64)}", "TZ=Europe/Berlin", "LOG_FORMAT=json",
             f"IMAGE_TAG=sha-{sha(7)}", f"POSTHOG_HOST=https://eu.posthog.com", f"OTEL_SERVICE_NAME={pick(SVCS)}",
             f"FEATURE_FLAGS=new-checkout,dark-mode", f"DEPLOY_ID={ruuid()}", "API_KEY_HEADER=X-Api-Key", "TOKEN_TTL_SECONDS=3600",
             "PASSWORD_MIN_LENGTH=12", "SECRET_NAME=prod/billing/db", "JWT_ALGORITHM=RS256", "AUTH_ISSUER=https://auth.acme.io/"]
    return "\n".join(R.sample(lines, R.randint(4, 8))) + "\n"


def neg_hashes_misc():
    return pick([
        lambda: f"MD5 ({pick(['setup.exe', 'backup.tar', 'photo.jpg'])}) = {sha(32)}",
        lambda: f"ETag: \"{sha(32)}\"\nCache-Control: public, max-age=31536000, immutable",
        lambda: f"diff --git a/src/app.py b/src/app.py\nindex {sha(7)}..{sha(7)} 100644\n--- a/src/app.py\n+++ b/src/app.py",
        lambda: f"Content-MD5: {b64(rbytes(16))}",
        lambda: f"Host key fingerprint is SHA256:{b64(rbytes(32)).rstrip('=')}\nAre you sure you want to continue connecting (yes/no)?",
        lambda: f"Content-Security-Policy: script-src 'self' 'nonce-{b64(rbytes(16))}' 'sha256-{b64(rbytes(32))}'",
        lambda: f"SHA256 Fingerprint={':'.join(wrap(rs(HEXU, 64), 2))}",
        lambda: f"      - uses: actions/cache@v4\n        with:\n          key: ${{{{ runner.os }}}}-pip-{sha(64)}",
        lambda: f"sha1sum: {sha(40)}  report-2024-Q3.pdf",
        lambda: f"Public-Key-Pins: pin-sha256=\"{b64(rbytes(32))}\"; max-age=5184000",
        lambda: f"<link rel=\"stylesheet\" href=\"/assets/app-{sha(20)}.css\">",
    ])()


def neg_encoded():
    return pick([
        lambda: f"$ echo '{b64(pick(PLAIN_PAYLOADS))}' | base64 -d",
        lambda: f"{rtimestamp()} DEBUG queue payload=H4sIAAAAAAAA/{b64(rbytes(R.randint(40, 120)))}",
        lambda: f"Content-Type: text/plain; name=\"notes.txt\"\nContent-Transfer-Encoding: base64\n\n" + "\n".join(wrap(b64(b"Meeting notes: ship v2 on Friday. Owner: Dana.\n" * 2), 76)),
        lambda: f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: logo\nbinaryData:\n  logo.png: {b64(png_bytes(R.randint(40, 120)))}",
        lambda: f"grpc-status-details-bin: {b64(rbytes(R.randint(20, 60))).rstrip('=')}",
        lambda: "GET /v1/events?cursor=" + b64u(json.dumps({"offset": R.randint(50, 9000), "sort": "created_at"}).encode()) + "&limit=50",
    ])()


def neg_chat():
    return pick([
        "I accidentally committed my AWS key to a public repo — what's the fastest way to rotate it and check CloudTrail?",
        "How should I store my OpenAI API key in a Next.js app without exposing it to the browser?",
        "What's the difference between Stripe sk_test and sk_live keys, and can I use restricted keys in CI?",
        "My GitHub token expired; how do I create a new one with only the repo scope?",
        "Is it safe to put the Firebase config in my frontend bundle? It has an apiKey field.",
        "Can you explain how JWT signature verification works with RS256?",
        "We use Vault for DB credentials. How do dynamic secrets get rotated?",
        "What's a good password policy for our internal admin panel? Minimum length, MFA, rotation?",
        "How do I make docker-compose read secrets from a file instead of environment variables?",
        "Our Slack webhook got leaked in a screenshot; do I need to delete the whole app or just regenerate the URL?",
        "Write a Python function that masks everything but the last four characters of a token.",
        "Explain the difference between an SSH public key and a private key, and which one goes on the server.",
        "Why does `git push` ask for my password even though I added a personal access token?",
        "Should API keys be hashed in the database like passwords?",
        "Which GitHub Actions permission does `GITHUB_TOKEN` need to create releases?",
        "Can a UUID be used as an API key, or is it too predictable?",
    ])


NEG_CATEGORIES = [
    ("git_sha", neg_git_sha), ("sha256", neg_sha256), ("uuid", neg_uuid), ("data_uri", neg_data_uri),
    ("integrity_hash", neg_integrity), ("placeholder", neg_placeholder), ("env_reference", neg_env_reference),
    ("public_key", neg_public_key), ("object_id", neg_object_ids), ("aws_resource", neg_aws_resource),
    ("safe_code", neg_safe_code), ("minified_js", neg_minified_js), ("format_docs", neg_docs),
    ("redacted", neg_redacted), ("db_url_no_password", neg_db_nopass), ("crypto_address", neg_crypto_addr),
    ("container_id", neg_containers), ("build_env", neg_build_env), ("hash_misc", neg_hashes_misc),
    ("encoded_data", neg_encoded), ("chat_about_secrets", neg_chat),
]


def negatives() -> list[dict]:
    rows = []
    for cat, fn in NEG_CATEGORIES:
        seen: set[str] = set()
        n = 0
        for _ in range(NEG_PER_CATEGORY * 20):
            if n >= NEG_PER_CATEGORY:
                break
            text = fn()
            if text in seen:
                continue
            seen.add(text)
            n += 1
            rows.append(row(f"negative.{cat}", n, "no_secret", text, []))
    return rows


# --------------------------------------------------------------------------- main

def validate(rows: list[dict]) -> None:
    ids = set()
    for r in rows:
        assert r["id"] not in ids, r["id"]
        ids.add(r["id"])
        b = r["text"].encode()
        if r["label"] == "secret":
            assert len(r["spans"]) == 1, r["id"]
            for s in r["spans"]:
                assert b[s["start"]:s["end"]].decode() == s["value"], r["id"]
                assert r["text"].count(s["value"]) == 1, ("secret repeated", r["id"])
        else:
            assert r["label"] == "no_secret" and r["spans"] == [], r["id"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only validate the existing output file")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.check:
        rows = [json.loads(l) for l in args.out.read_text().splitlines()]
    else:
        rows = positives() + negatives()
        validate(rows)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    validate(rows)
    labels = Counter(r["label"] for r in rows)
    kinds = Counter(r["kind"] for r in rows)
    pos_kinds = sorted(k for k in kinds if not k.startswith("negative."))
    print(f"{args.out}: {len(rows)} lines, {args.out.stat().st_size} bytes")
    print("labels:", dict(labels))
    print(f"positive kinds ({len(pos_kinds)}):")
    for k in pos_kinds:
        print(f"  {k:38s} {kinds[k]}")
    print("negative categories:")
    for k in sorted(k for k in kinds if k.startswith("negative.")):
        print(f"  {k:38s} {kinds[k]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
