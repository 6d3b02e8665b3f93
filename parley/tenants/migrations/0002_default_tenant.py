"""The default tenant (Q-1): conversations that name no tenant belong to it."""

from django.conf import settings
from django.db import migrations


def create(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    Tenant.objects.get_or_create(
        id=settings.DEFAULT_TENANT_ID,
        defaults={"name": "default", "time_zone": settings.DEFAULT_TENANT_TIME_ZONE},
    )


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
