"""The three lists as Django admin changelists, mirroring the screens (views/issuances.py,
views/deviations.py, views/registers.py): the same columns, order, filters and page size, and
the relations the list shows read with the page (`list_select_related`)."""

from django.contrib import admin

from bench.django_site.models import Deviation, Issuance, Person


class BenchAdmin(admin.ModelAdmin):
    # Django's own advice for large tables: a filtered list does not count the whole table
    # as well. The filtered rows are still counted in full (Django has no bounded count).
    show_full_result_count = False
    actions = None


@admin.register(Issuance)
class IssuanceAdmin(BenchAdmin):
    list_display = ("id", "card", "recipient", "reason", "channel", "status", "valid_until",
                    "receipt_due", "created_at")
    list_select_related = ("card", "recipient")
    list_filter = ("status", "reason", "channel", "created_at", "valid_until", "receipt_due")
    ordering = ("-created_at", "-id")
    list_per_page = 25


@admin.register(Deviation)
class DeviationAdmin(BenchAdmin):
    list_display = ("id", "created_at", "type", "status", "unit", "person", "card_serial")
    list_select_related = ("unit", "person")
    # The screen looks its unit filter up as you type; Django admin has no such list filter
    # (its RelatedFieldListFilter would put every unit in the page), so the unit is only
    # filtered by the URL (`?unit__id__exact=N`, allowed for a local foreign key).
    list_filter = ("type", "status", "created_at")
    search_fields = ("card_serial",)
    ordering = ("-created_at", "-id")
    list_per_page = 50


@admin.register(Person)
class PersonAdmin(BenchAdmin):
    list_display = ("name", "hsa_id", "personal_number", "unit", "email", "protected_identity")
    list_select_related = ("unit",)
    list_filter = ("protected_identity",)
    search_fields = ("name", "hsa_id", "personal_number", "email")
    ordering = ("name", "id")
    list_per_page = 25
