"""REST API v1 (design.md §2): thin views over services and selectors."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from storage.quotas import usage_for


class UsageLimitSerializer(serializers.Serializer):
    used = serializers.CharField()
    limit = serializers.CharField()


class UsageSerializer(serializers.Serializer):
    month = serializers.CharField(help_text="the calendar month (UTC) that spend is counted in, YYYY-MM")
    storage_bytes = UsageLimitSerializer()
    monthly_spend_usd = UsageLimitSerializer()
    active_jobs = UsageLimitSerializer()


def usage_payload(user) -> dict:
    usage = usage_for(user)
    return {
        "month": usage.month.strftime("%Y-%m"),
        "storage_bytes": {"used": usage.bytes, "limit": usage.limits.storage_bytes},
        "monthly_spend_usd": {"used": f"{usage.spend_usd:.2f}", "limit": f"{usage.limits.monthly_spend_usd:.2f}"},
        "active_jobs": {"used": usage.active_jobs, "limit": usage.limits.active_jobs},
    }


class UsageView(APIView):
    @extend_schema(responses=UsageSerializer, summary="Your usage against your limits")
    def get(self, request: Request) -> Response:
        return Response(usage_payload(request.user))
