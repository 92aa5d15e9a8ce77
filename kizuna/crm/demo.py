"""Demo data of the CRM core: two organizations, their members, a few hundred leads and
contacts with Japanese and English names, and their timelines.

`kizuna demo` calls load(); a second run finds the data and only makes sure the
memberships are in place, so it stays fast.
"""

from __future__ import annotations

import importlib
import importlib.util
import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.management.base import OutputWrapper
from django.utils import timezone

from kizuna.crm import services
from kizuna.crm.models import (
    Activity,
    ActivityKind,
    Contact,
    Lead,
    LeadSource,
    LeadStatus,
    Membership,
    Organization,
    Role,
)

if TYPE_CHECKING:
    from kizuna.identity.models import User

DEMO_ORGANIZATION = "Kizuna Demo"
SECOND_ORGANIZATION = "Sato Trading"

JAPANESE_FAMILY = [
    "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤",
    "吉田", "山田", "佐々木", "山口", "松本", "井上", "木村", "林", "斎藤", "清水",
]  # fmt: skip
JAPANESE_GIVEN = [
    "翔太", "蓮", "大翔", "陽菜", "結衣", "美咲", "健太", "拓也", "さくら", "花子",
    "一郎", "直樹", "愛", "恵", "由美", "亮", "真由美", "大輔", "彩", "浩二",
]  # fmt: skip
JAPANESE_COMPANIES = [
    "さくら食品株式会社", "富士テック株式会社", "青葉商事", "北斗物流株式会社",
    "みなと建設", "東和システム株式会社", "大和精機", "ひかり電機株式会社",
    "千代田コンサルティング", "丸山製作所",
]  # fmt: skip
JAPANESE_CITIES = [
    ("東京都", "千代田区", "100-0001"), ("大阪府", "大阪市北区", "530-0001"),
    ("愛知県", "名古屋市中区", "460-0008"), ("福岡県", "福岡市博多区", "812-0011"),
    ("北海道", "札幌市中央区", "060-0001"), ("京都府", "京都市下京区", "600-8216"),
]  # fmt: skip
JAPANESE_TITLES = ["部長", "課長", "主任", "代表取締役", "営業担当", "マネージャー", ""]
ENGLISH_FAMILY = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
    "Taylor", "Clark", "Lewis", "Walker", "Hall", "Young", "King", "Wright",
]  # fmt: skip
ENGLISH_GIVEN = [
    "Olivia", "Liam", "Emma", "Noah", "Ava", "James", "Sophia", "Lucas", "Mia", "Ethan",
    "Grace", "Henry", "Chloe", "Jack", "Ella", "Oscar",
]  # fmt: skip
ENGLISH_COMPANIES = [
    "Northwind Traders", "Blue Harbor Ltd", "Acme Analytics", "Greenfield Foods",
    "Summit Logistics", "Brightline Media", "Oakridge Partners", "Pioneer Robotics",
]  # fmt: skip
ENGLISH_CITIES = [
    ("CA", "San Francisco", "94105", "United States"), ("NY", "New York", "10001", "United States"),
    ("", "London", "EC1A 1BB", "United Kingdom"), ("NSW", "Sydney", "2000", "Australia"),
]  # fmt: skip
ENGLISH_TITLES = ["Head of Sales", "Purchasing Manager", "CTO", "Marketing Lead", "Founder", ""]
STATUS_WEIGHTS = [
    (LeadStatus.NEW, 40),
    (LeadStatus.CONTACTED, 30),
    (LeadStatus.QUALIFIED, 18),
    (LeadStatus.UNQUALIFIED, 12),
]
SOURCES = [value for value in LeadSource.values if value]
ROMAJI = {
    "佐藤": "sato", "鈴木": "suzuki", "高橋": "takahashi", "田中": "tanaka", "伊藤": "ito",
    "渡辺": "watanabe", "山本": "yamamoto", "中村": "nakamura", "小林": "kobayashi",
    "加藤": "kato", "吉田": "yoshida", "山田": "yamada", "佐々木": "sasaki", "山口": "yamaguchi",
    "松本": "matsumoto", "井上": "inoue", "木村": "kimura", "林": "hayashi", "斎藤": "saito",
    "清水": "shimizu",
}  # fmt: skip


def load(*, users: dict[str, User], stdout: OutputWrapper) -> None:
    demo = _organization(
        DEMO_ORGANIZATION, [(users["ada"], Role.ADMINISTRATOR), (users["bob"], Role.STANDARD)]
    )
    second = _organization(SECOND_ORGANIZATION, [(users["charlie"], Role.ADMINISTRATOR)])
    created = 0
    created += _people(demo, owners=[users["ada"], users["bob"]], leads=300, contacts=150, seed=1)
    created += _people(second, owners=[users["charlie"]], leads=60, contacts=30, seed=2)
    if created:
        stdout.write(f"CRM: {created} demo leads and contacts in {demo.name} and {second.name}.")
    else:
        stdout.write("CRM: demo organizations already loaded.")
    _load_optional("kizuna.crm.mail.demo", users=users, stdout=stdout)


def _load_optional(module_name: str, **kwargs: Any) -> None:
    """Parts of the CRM that bring their own demo data (mail templates, sent emails)."""
    if importlib.util.find_spec(module_name) is None:
        return
    importlib.import_module(module_name).load(**kwargs)


def _organization(name: str, members: list[tuple[User, str]]) -> Organization:
    organization = Organization.objects.filter(name=name).order_by("pk").first()
    if organization is None:
        organization = Organization.objects.create(name=name)
    for user, role in members:
        Membership.objects.update_or_create(
            organization=organization, user=user, defaults={"role": role, "is_active": True}
        )
    return organization


def _people(
    organization: Organization, *, owners: list[User], leads: int, contacts: int, seed: int
) -> int:
    if Lead.objects.filter(organization=organization).exists():
        return 0
    rng = random.Random(seed)
    now = timezone.now()
    actor = owners[0]

    def person(index: int) -> dict[str, Any]:
        fields: dict[str, Any]
        japanese = index % 3 != 2  # two in three names are Japanese
        if japanese:
            family, given = rng.choice(JAPANESE_FAMILY), rng.choice(JAPANESE_GIVEN)
            region, city, postal = rng.choice(JAPANESE_CITIES)
            number = rng.randint(1000, 9999)
            fields = {
                "family_name": family,
                "given_name": given,
                "company": rng.choice(JAPANESE_COMPANIES),
                "title": rng.choice(JAPANESE_TITLES),
                "email": f"{ROMAJI[family]}.{index}@example.jp",
                "phone": f"0{rng.randint(3, 9)}-{rng.randint(1000, 9999)}-{number}",
                "region": region,
                "city": city,
                "postal_code": postal,
                "street": f"{rng.randint(1, 5)}-{rng.randint(1, 20)}-{rng.randint(1, 30)}",
                "country": "日本",
            }
        else:
            family, given = rng.choice(ENGLISH_FAMILY), rng.choice(ENGLISH_GIVEN)
            region, city, postal, country = rng.choice(ENGLISH_CITIES)
            fields = {
                "family_name": family,
                "given_name": given,
                "company": rng.choice(ENGLISH_COMPANIES),
                "title": rng.choice(ENGLISH_TITLES),
                "email": f"{given.lower()}.{family.lower()}.{index}@example.com",
                "phone": f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                "region": region,
                "city": city,
                "postal_code": postal,
                "street": f"{rng.randint(1, 999)} Market Street",
                "country": country,
            }
        created_at = now - timedelta(days=rng.randint(0, 180), minutes=rng.randint(0, 1440))
        fields.update(
            organization=organization,
            lead_source=rng.choice(SOURCES),
            owner=rng.choice([*owners, None]) if index % 7 else None,
            email_opt_out=index % 23 == 0,
            created_by=actor,
            modified_by=actor,
            created_at=created_at,
            modified_at=created_at,
        )
        return fields

    statuses = [status for status, weight in STATUS_WEIGHTS for _ in range(weight)]
    Lead.objects.bulk_create(
        Lead(status=rng.choice(statuses), **person(index)) for index in range(leads)
    )
    Contact.objects.bulk_create(
        Contact(department=rng.choice(["", "営業部", "購買部", "Sales", "IT"]), **person(index))
        for index in range(leads, leads + contacts)
    )
    new_leads = list(Lead.objects.filter(organization=organization).order_by("pk"))
    new_contacts = list(Contact.objects.filter(organization=organization).order_by("pk"))
    activities = [
        Activity(
            organization=organization,
            lead=lead,
            kind=ActivityKind.CREATED,
            actor=actor,
            created_at=lead.created_at,
        )
        for lead in new_leads
    ]
    activities += [
        Activity(
            organization=organization,
            contact=contact,
            kind=ActivityKind.CREATED,
            actor=actor,
            created_at=contact.created_at,
        )
        for contact in new_contacts
    ]
    for lead in new_leads:
        if lead.status != LeadStatus.NEW:
            activities.append(
                Activity(
                    organization=organization,
                    lead=lead,
                    kind=ActivityKind.EDITED,
                    actor=lead.owner or actor,
                    data={"fields": ["status"]},
                    created_at=min(lead.created_at + timedelta(days=2), now),
                )
            )
    Activity.objects.bulk_create(activities)
    # A few qualified leads became contacts, through the real conversion.
    for lead in [lead for lead in new_leads if lead.status == LeadStatus.QUALIFIED][:8]:
        services.convert_lead(lead=lead, by=lead.owner or actor)
    return len(new_leads) + len(new_contacts)
