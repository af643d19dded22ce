from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("teamapp", "0003_note")]
    operations = [
        migrations.RemoveField("ticket", "created"),
        migrations.RemoveField("ticket", "token"),
        migrations.RemoveField("ticket", "since"),
    ]
