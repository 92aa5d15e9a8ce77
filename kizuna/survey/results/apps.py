from django.apps import AppConfig


class SurveyResultsConfig(AppConfig):
    name = "kizuna.survey.results"
    label = "survey_results"
    verbose_name = "Survey results"
