"""_providers"""
