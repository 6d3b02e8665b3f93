"""Out of the box (A-3): ``sales`` to the Slack channel ``sales-slack``, ``pricing`` to the
email channel ``pricing-email``. Their configs stay empty: while they are, the channels read
ASSISTANCE_SLACK_WEBHOOK_URL, and ASSISTANCE_EMAIL_TO with Django's email settings."""

from django.db import migrations
from django.utils import timezone

DEFAULTS = [
    ("sales", "Sales", "sales-slack", "slack"),
    ("pricing", "Pricing", "pricing-email", "email"),
]


def create(apps, schema_editor):
    Channel = apps.get_model("assistance", "Channel")
    Topic = apps.get_model("assistance", "Topic")
    now = timezone.now()
    for slug, name, channel_name, kind in DEFAULTS:
        channel, _ = Channel.objects.get_or_create(
            name=channel_name, defaults={"kind": kind, "config": {}, "created_at": now}
        )
        Topic.objects.get_or_create(
            slug=slug, defaults={"name": name, "channel": channel, "created_at": now}
        )


def remove(apps, schema_editor):
    Channel = apps.get_model("assistance", "Channel")
    Topic = apps.get_model("assistance", "Topic")
    Topic.objects.filter(slug__in=[d[0] for d in DEFAULTS]).delete()
    Channel.objects.filter(name__in=[d[2] for d in DEFAULTS], topics__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("assistance", "0001_initial")]

    operations = [migrations.RunPython(create, remove)]
