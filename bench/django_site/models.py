"""The bench database's tables as Django sees them: unmanaged models (Django never creates,
alters or drops them) with only the columns and relations the three lists show or filter on."""

from django.db import models

from models.deviations import DEVIATION_STATUSES, DEVIATION_TYPES
from models.issuances import CHANNELS, ISSUANCE_STATUSES, REASONS


def choices(codes):
    # Choices make the admin's filters fixed links; a plain CharField filter would read
    # every distinct value of the column for each page.
    return [(code, code.replace("_", " ")) for code in codes]


class Unit(models.Model):
    name = models.CharField(max_length=200)
    hsa_id = models.CharField(max_length=64, null=True)

    class Meta:
        managed = False
        db_table = "units"

    def __str__(self):
        return self.name


class Person(models.Model):
    hsa_id = models.CharField(max_length=64, unique=True)
    personal_number = models.CharField(max_length=12, null=True)
    name = models.CharField(max_length=200)
    email = models.CharField(max_length=254, null=True)
    unit = models.ForeignKey(Unit, models.DO_NOTHING, null=True)
    protected_identity = models.BooleanField()

    class Meta:
        managed = False
        db_table = "people"

    def __str__(self):  # as the issuance list shows a recipient
        return f"{self.name} ({self.hsa_id})"


class Card(models.Model):
    serial = models.CharField(max_length=20, unique=True)
    loa = models.CharField(max_length=4)

    class Meta:
        managed = False
        db_table = "reserve_cards"

    def __str__(self):
        return self.serial


class Issuance(models.Model):
    card = models.ForeignKey(Card, models.DO_NOTHING)
    recipient = models.ForeignKey(Person, models.DO_NOTHING)
    reason = models.CharField(max_length=32, choices=choices(REASONS))
    channel = models.CharField(max_length=16, choices=choices(CHANNELS))
    status = models.CharField(max_length=20, choices=choices(ISSUANCE_STATUSES))
    valid_until = models.DateField(null=True)
    receipt_due = models.DateField(null=True)
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "issuances"


class Deviation(models.Model):
    type = models.CharField(max_length=32, choices=choices(DEVIATION_TYPES))
    status = models.CharField(max_length=16, choices=choices(DEVIATION_STATUSES))
    unit = models.ForeignKey(Unit, models.DO_NOTHING, null=True)
    person = models.ForeignKey(Person, models.DO_NOTHING, null=True)
    card_serial = models.CharField(max_length=20, null=True)
    created_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "deviations"
