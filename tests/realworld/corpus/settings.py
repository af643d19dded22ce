"""Settings of the real-world corpus: popular third-party Django packages, pinned in
requirements-*.txt beside this package, installed together as a team adopting statecache
would. Only what `migrate` and the system checks need is configured.

The database and the cache directory come from the environment, as in the generated projects
(tests/projects.py): GEN_DB, STATECACHE_DIR, STATECACHE_ENABLED.
"""

import os
from importlib.util import find_spec
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "realworld-corpus-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "German")]
SITE_ID = 1
ROOT_URLCONF = "corpus.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
MEDIA_ROOT = str(BASE_DIR / "media")
STATIC_ROOT = str(BASE_DIR / "static")


def installed(module: str) -> bool:
    """Packages pinned for Django 5.2 only (their metadata caps Django below 6.1)."""
    return find_spec(module) is not None


DJANGO = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.flatpages",
    "django.contrib.humanize",
]
WAGTAIL = [
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.contrib.search_promotions",
    "wagtail.contrib.simple_translation",
    "wagtail.contrib.settings",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.locales",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
]
CMS = [
    "cms",
    "menus",
    "treebeard",
    "sekizai",
    "djangocms_text_ckeditor",
    "djangocms_link",
    "djangocms_picture",
    "djangocms_file",
    "djangocms_style",
    "djangocms_video",
    "djangocms_googlemap",
    "djangocms_snippet",
    "djangocms_alias",
    "parler",
    "filer",
    "easy_thumbnails",
]
OSCAR = [
    "oscar.config.Shop",
    "oscar.apps.analytics.apps.AnalyticsConfig",
    "oscar.apps.checkout.apps.CheckoutConfig",
    "oscar.apps.address.apps.AddressConfig",
    "oscar.apps.shipping.apps.ShippingConfig",
    "oscar.apps.catalogue.apps.CatalogueConfig",
    "oscar.apps.catalogue.reviews.apps.CatalogueReviewsConfig",
    "oscar.apps.communication.apps.CommunicationConfig",
    "oscar.apps.partner.apps.PartnerConfig",
    "oscar.apps.basket.apps.BasketConfig",
    "oscar.apps.payment.apps.PaymentConfig",
    "oscar.apps.offer.apps.OfferConfig",
    "oscar.apps.order.apps.OrderConfig",
    "oscar.apps.customer.apps.CustomerConfig",
    "oscar.apps.search.apps.SearchConfig",
    "oscar.apps.voucher.apps.VoucherConfig",
    "oscar.apps.wishlists.apps.WishlistsConfig",
    "oscar.apps.dashboard.apps.DashboardConfig",
    "oscar.apps.dashboard.reports.apps.ReportsDashboardConfig",
    "oscar.apps.dashboard.users.apps.UsersDashboardConfig",
    "oscar.apps.dashboard.orders.apps.OrdersDashboardConfig",
    "oscar.apps.dashboard.catalogue.apps.CatalogueDashboardConfig",
    "oscar.apps.dashboard.offers.apps.OffersDashboardConfig",
    "oscar.apps.dashboard.partners.apps.PartnersDashboardConfig",
    "oscar.apps.dashboard.pages.apps.PagesDashboardConfig",
    "oscar.apps.dashboard.ranges.apps.RangesDashboardConfig",
    "oscar.apps.dashboard.reviews.apps.ReviewsDashboardConfig",
    "oscar.apps.dashboard.vouchers.apps.VouchersDashboardConfig",
    "oscar.apps.dashboard.communications.apps.CommunicationsDashboardConfig",
    "oscar.apps.dashboard.shipping.apps.ShippingDashboardConfig",
    "widget_tweaks",
    "haystack",
    "sorl.thumbnail",
    "django_tables2",
]
MACHINA = [
    "mptt",
    "machina",
    "machina.apps.forum",
    "machina.apps.forum_conversation",
    "machina.apps.forum_conversation.forum_attachments",
    "machina.apps.forum_conversation.forum_polls",
    "machina.apps.forum_feeds",
    "machina.apps.forum_moderation",
    "machina.apps.forum_search",
    "machina.apps.forum_tracking",
    "machina.apps.forum_member",
    "machina.apps.forum_permission",
]
WIKI = [
    "django_nyt",
    "wiki",
    "wiki.plugins.attachments",
    "wiki.plugins.notifications",
    "wiki.plugins.images",
    "wiki.plugins.macros",
]
AUTH = [
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.mfa",
    "allauth.usersessions",
    "social_django",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_hotp",
    "django_otp.plugins.otp_static",
    "django_otp.plugins.otp_email",
    "two_factor",
    "two_factor.plugins.phonenumber",
    "oauth2_provider",
    "rest_framework",
    "rest_framework.authtoken",
    "knox",
    "axes",
    "defender",
    "guardian",
    "user_sessions",
    "invitations",
    "organizations",
]
OTHERS = [
    "helpdesk",
    "djstripe",
    "explorer",
    "django_celery_beat",
    "django_celery_results",
    "reversion",
    "simple_history",
    "constance",
    "polymorphic",
    "waffle",
    "silk",
    "auditlog",
    "post_office",
    "push_notifications",
    "robots",
    "flags",
    "watson",
    "django_comments",
    "django_comments_xtd",
    "actstream",
    "easyaudit",
    "django_q",
    "django_summernote",
    "cookie_consent",
    "categories",
    "categories.editor",
    "newsletter",
    "sitetree",
    "import_export",
]
FIVE_TWO_ONLY = {"django_nyt", "wiki", "django_celery_beat"}
INSTALLED_APPS = [
    app
    for app in [
        *DJANGO,
        *WAGTAIL,
        *CMS,
        *OSCAR,
        *MACHINA,
        *WIKI,
        *AUTH,
        *OTHERS,
        "teamapp",
        "statecache",
    ]
    if app.split(".")[0] not in FIVE_TWO_ONLY or installed(app.split(".")[0])
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "cms.middleware.user.CurrentUserMiddleware",
    "cms.middleware.page.CurrentPageMiddleware",
    "cms.middleware.toolbar.ToolbarMiddleware",
    "cms.middleware.language.LanguageCookieMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "sekizai.context_processors.sekizai",
                "cms.context_processors.cms_settings",
            ]
        },
    }
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("GEN_DB", str(BASE_DIR / "db.sqlite3")),
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
STATECACHE_ENABLED = True
STATECACHE_DIR = os.environ.get("STATECACHE_DIR", str(BASE_DIR / ".statecache"))

# django CMS
CMS_TEMPLATES = [("base.html", "Base")]
CMS_CONFIRM_VERSION4 = True
# Oscar
from oscar.defaults import *  # noqa: E402, F403

HAYSTACK_CONNECTIONS = {"default": {"ENGINE": "haystack.backends.simple_backend.SimpleEngine"}}
# Wagtail
WAGTAIL_SITE_NAME = "corpus"
WAGTAILADMIN_BASE_URL = "http://localhost"
WAGTAIL_I18N_ENABLED = True
WAGTAIL_CONTENT_LANGUAGES = LANGUAGES
# helpdesk: the teams foreign key goes to the user model (a settings-dependent migration)
HELPDESK_TEAMS_MODE_ENABLED = False
# dj-stripe
STRIPE_LIVE_MODE = False
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_SECRET = "whsec_corpus"
# django-sql-explorer (its encrypted fields read the key at import)
EXPLORER_CONNECTIONS = {"Default": "default"}
EXPLORER_DEFAULT_CONNECTION = "default"
# celery
CELERY_RESULT_BACKEND = "django-db"
# axes, defender
AXES_ENABLED = False
DEFENDER_REDIS_URL = None
# wiki
WIKI_ACCOUNT_HANDLING = False
# django-comments-xtd
COMMENTS_APP = "django_comments_xtd"
# silk
SILKY_PYTHON_PROFILER = False
# sorl / easy-thumbnails / filer
THUMBNAIL_PROCESSORS = (
    "easy_thumbnails.processors.colorspace",
    "easy_thumbnails.processors.autocrop",
    "filer.thumbnail_processors.scale_and_crop_with_subject_location",
    "easy_thumbnails.processors.filters",
)
# django-q2
Q_CLUSTER = {"name": "corpus", "orm": "default", "timeout": 30, "retry": 60}
# djangocms-snippet and -alias use djangocms-versioning by default; the corpus has none
DJANGOCMS_SNIPPET_VERSIONING_ENABLED = False
DJANGOCMS_SNIPPET_MODERATION_ENABLED = False
DJANGOCMS_ALIAS_VERSIONING_ENABLED = False
SILENCED_SYSTEM_CHECKS = ["treebeard.E001", "templates.W003", "axes.W002", "axes.W003"]
